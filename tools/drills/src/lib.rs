//! Failure drills: each starts what it breaks, injects one fault, lets the system recover,
//! then **counts** — what the producer was told was stored versus what a fresh reader
//! finds, orders accepted versus payments applied — so a claim of the study note becomes
//! a number.
//!
//! - [`store`]: the store-stage drills on a Kafka cluster of their own (acks, min ISR and
//!   its alerts, replication factor, unclean election, kill -9, the outbox relay through a
//!   leader loss); `make drills-replication`.
//! - [`matrix`]: the failure matrix (docs/en/09-failure-matrix.md) against the real
//!   services, each fault with the safe configuration and its unsafe teaching toggle;
//!   `make drills`.
//! - [`scale_out`]: several order- and payment-services under k6, one of each killed -9;
//!   `make drills-scale-out`.
//! - [`soak`]: the whole chain under steady load with a scripted fault schedule;
//!   `make soak`.
//!
//! What they share: [`cluster`] (a Kafka cluster of the drill's own, via
//! `infra/native/kafka.sh`), [`environment`] (a fresh world of databases, topics and
//! groups per drill), [`process`] (the services as child processes), [`proxy`] (a
//! connection that can be cut), [`load`] (orders over HTTP), [`k6`] (the load of the
//! scale-out drill and the soak), [`native_script`] (the `infra/native` scripts that start
//! and break the drills' own servers), [`settle`] (waiting for the chain to come to rest),
//! [`report`] (where results go and how runs end) and [`DrillError`].

pub mod cluster;
pub mod environment;
pub mod error;
pub mod k6;
pub mod load;
pub mod matrix;
pub mod native_script;
pub mod process;
pub mod proxy;
pub mod report;
pub mod scale_out;
pub mod settle;
pub mod soak;
pub mod store;

pub use environment::DrillEnv;
pub use error::DrillError;
pub use matrix::Row;
pub use report::{finish, load_average, results_dir, timeline_markdown};
