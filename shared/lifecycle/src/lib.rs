//! The life of a process, apart from what it serves: how it stops ([`Shutdown`]), how
//! its background loops are watched ([`BackgroundTasks`]) and paced ([`every`],
//! [`purge_interval`], [`backoff`]), where a drill may kill it ([`CrashPoint`]), and
//! how it exits on a bad start ([`exit_on_error`]).
//!
//! The mechanism crates (`outbox`, `message-consumer`, `inbox`) depend on this crate and
//! not on the HTTP runtime: a relay or a consumer loop needs a stop switch and a crash
//! point, not a router.

mod backoff;
mod crash;
mod exit;
mod periodic;
mod shutdown;
mod tasks;

pub use backoff::{backoff, with_jitter};
pub use crash::{CrashPoint, crash_at_from_lookup};
pub use exit::exit_on_error;
pub use periodic::{every, purge_interval};
pub use shutdown::{Shutdown, shutdown_signal};
pub use tasks::{BackgroundTasks, TaskFailure};
