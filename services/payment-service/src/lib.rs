//! payment-service: consumes `OrderCreated` events, applies each payment exactly once,
//! and reports the outcome back (docs/en/04-consume.md).
//!
//! - `payments.rs`  the idempotent handler: inbox, charge, payment row, outcome event
//! - `provider.rs`  the simulated external payment provider (idempotency key)
//! - `events.rs`    the wire format it reads and writes
//! - `stats.rs`     the counters per defence layer (`GET /stats`)
//! - `app.rs`       wiring: database, consumer, relay, purge, HTTP server

mod app;
mod config;
pub mod events;
mod payments;
pub mod provider;
mod stats;

pub use app::App;
pub use config::{Config, DEFAULTS};
pub use payments::Payments;
pub use stats::{Stats, StatsSnapshot};
