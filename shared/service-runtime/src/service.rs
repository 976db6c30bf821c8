//! A built service: its HTTP server, its background loops and its database pool,
//! started together and stopped together, in one order.

use std::net::SocketAddr;

use sqlx::PgPool;

use crate::{BackgroundTasks, HttpServer, Shutdown};

#[derive(Debug)]
pub struct Service {
    name: &'static str,
    server: HttpServer,
    tasks: BackgroundTasks,
    pool: PgPool,
    shutdown: Shutdown,
}

impl Service {
    /// `shutdown` must be the switch `server` and `tasks` watch.
    pub fn new(
        name: &'static str,
        server: HttpServer,
        tasks: BackgroundTasks,
        pool: PgPool,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            name,
            server,
            tasks,
            pool,
            shutdown,
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The switch that stops the running service (tests use it instead of a signal).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves until SIGINT/SIGTERM or the shutdown switch; then lets the background
    /// loops finish the work in hand (a relay its pass and flush, a consumer the message
    /// it holds and its offset commit), and closes the pool.
    pub async fn run_until_stopped(self) {
        self.server.serve().await;
        self.tasks.join().await;
        self.pool.close().await;
        tracing::info!(service = self.name, "stopped");
    }
}
