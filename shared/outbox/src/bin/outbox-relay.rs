//! `outbox-relay`: the relay as a process of its own, for scaling out beside (or instead
//! of) the relay inside the service. Several may run against one database: claims
//! never overlap and each key's events still go out in order (see `relay/claim.rs`).
//!
//! Reads `DATABASE_URL` (the service's database, already migrated by the service),
//! `KAFKA_BOOTSTRAP_SERVERS` and the `RELAY_*` variables; stops on SIGINT/SIGTERM after
//! finishing its pass and flushing the producer.

use std::process::ExitCode;

use lifecycle::{Shutdown, shutdown_signal};
use outbox::{Relay, RelayConfig};
use service_config::{
    DEFAULT_KAFKA_BOOTSTRAP_SERVERS, DEFAULT_POSTGRES_SERVER, parse_bootstrap_servers, parse_url,
};
use sqlx::postgres::PgPoolOptions;

#[tokio::main]
async fn main() -> ExitCode {
    lifecycle::exit_on_error("outbox-relay", run().await)
}

/// Why the relay could not start: a bad variable, or a client that could not be made.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Config(#[from] service_config::ConfigError),
    #[error("{variable}: {reason}")]
    Client {
        variable: &'static str,
        reason: String,
    },
}

async fn run() -> Result<(), StartError> {
    let lookup = |name: &str| std::env::var(name).ok();
    let database_url =
        lookup("DATABASE_URL").unwrap_or_else(|| format!("{DEFAULT_POSTGRES_SERVER}/orders"));
    parse_url("DATABASE_URL", &database_url, &["postgres", "postgresql"])?;
    let bootstrap = lookup("KAFKA_BOOTSTRAP_SERVERS")
        .unwrap_or_else(|| DEFAULT_KAFKA_BOOTSTRAP_SERVERS.to_owned());
    parse_bootstrap_servers("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)?;
    lifecycle::crash_at_from_lookup(&lookup)?;
    let host = lookup("HOSTNAME").unwrap_or_else(|| "local".to_owned());
    let config = RelayConfig::from_lookup(
        format!("outbox-relay-{host}-{}", std::process::id()),
        &lookup,
    )?;

    let _telemetry = telemetry::init("outbox-relay").map_err(|e| StartError::Client {
        variable: "OTEL_*",
        reason: e.to_string(),
    })?;
    // One connection for LISTEN, one for housekeeping, and one for each claim and each
    // mark that may be in flight at once.
    let connections = u32::try_from(2 * config.concurrency + 2).unwrap_or(u32::MAX);
    let pool = PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(&database_url)
        .await
        .map_err(|e| StartError::Client {
            variable: "DATABASE_URL",
            reason: e.to_string(),
        })?;
    let producer = config
        .producer_settings(&bootstrap)
        .client_config()
        .create()
        .map_err(|e| StartError::Client {
            variable: "KAFKA_BOOTSTRAP_SERVERS",
            reason: e.to_string(),
        })?;

    let shutdown = Shutdown::default();
    let relay = Relay::new(pool, producer, config);
    tracing::info!(config = ?relay.config(), "outbox-relay running");
    let stop = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        stop.trigger();
    });
    relay.run(shutdown).await;
    Ok(())
}
