//! Building and running the service: the same `App` runs in `main` and in tests
//! (on port 0).

use std::net::SocketAddr;

use axum::Router;
use service_runtime::{HttpServer, Infrastructure, Shutdown, StartError};

use crate::Config;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A built, not yet running, payment-service.
#[derive(Debug)]
pub struct App {
    server: HttpServer,
    infra: Infrastructure,
    shutdown: Shutdown,
}

impl App {
    /// Connects to Postgres (creating and migrating the `payments` database), prepares the
    /// Redis and Kafka clients and binds the listener. Fails fast on bad configuration.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let infra = Infrastructure::connect(&config.infra, 20, &MIGRATOR).await?;
        let router = Router::new().merge(infra.readiness_router());
        let shutdown = Shutdown::default();
        let server = HttpServer::bind(config.infra.listen_addr, router, shutdown.clone()).await?;
        Ok(Self {
            server,
            infra,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The switch that stops the running app (tests use it instead of a signal).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves until SIGINT/SIGTERM or the shutdown switch, then closes the pool.
    pub async fn run_until_stopped(self) {
        self.server.serve().await;
        self.infra.pool.close().await;
        tracing::info!("payment-service stopped");
    }
}
