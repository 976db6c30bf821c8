//! The start-up and shutdown mechanics every service shares: connect to its own
//! database (creating it, migrating it), serve HTTP until SIGINT/SIGTERM (every request
//! traced and counted, `GET /metrics` served: `observe.rs`), and turn a start-up
//! failure into one clear line instead of a panic.

mod crash;
mod database;
mod exit;
mod infrastructure;
mod observe;
mod server;
mod shutdown;
mod tasks;

use std::net::SocketAddr;

pub use crash::crash_point;
pub use database::{DatabaseError, connect_and_migrate};
pub use exit::exit_on_error;
pub use infrastructure::Infrastructure;
pub use observe::{metrics_upkeep, observe};
pub use server::HttpServer;
pub use shutdown::{Shutdown, shutdown_signal};
pub use tasks::BackgroundTasks;

/// Why a service could not start. `Display` is the single line `main` prints.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] service_config::ConfigError),
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error("HOST/PORT: cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("{variable}: {reason}")]
    Client {
        variable: &'static str,
        reason: String,
    },
}
