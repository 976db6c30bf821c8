//! The skeleton every service of the chain shares (`service.rs`): connect to its own
//! database (creating it, migrating it), start the relay, the gauges and the inbox
//! purge beside the service's own consumer, serve HTTP until SIGINT/SIGTERM (every
//! request traced and counted, `GET /metrics` served: `observe.rs`), and turn a
//! start-up failure into one clear line instead of a panic.

mod database;
mod infrastructure;
mod observe;
mod server;
mod service;

use std::net::SocketAddr;

pub use database::{DatabaseError, connect_and_migrate};
pub use infrastructure::Infrastructure;
pub use observe::{metrics_upkeep, observe};
pub use server::HttpServer;
pub use service::{CommonConfig, Service, ServiceSkeleton};

/// Why a service could not start, or stopped on its own. `Display` is the single line
/// `main` prints.
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
    /// Not at start but later: a background loop ended before shutdown and stopped the
    /// service (`lifecycle::BackgroundTasks`); `main` exits with a failure all the same.
    #[error("stopped because {}", failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    LoopEnded {
        failures: Vec<lifecycle::TaskFailure>,
    },
}

impl From<Vec<lifecycle::TaskFailure>> for StartError {
    fn from(failures: Vec<lifecycle::TaskFailure>) -> Self {
        Self::LoopEnded { failures }
    }
}
