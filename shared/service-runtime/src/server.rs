//! The HTTP side of a service: bound listener, router, graceful shutdown.

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

use crate::{Shutdown, StartError, shutdown_signal};

/// A bound, not yet serving, HTTP server.
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
}

impl HttpServer {
    /// Binds `addr`; port 0 picks a free port (tests).
    pub async fn bind(
        addr: SocketAddr,
        router: Router,
        shutdown: Shutdown,
    ) -> Result<Self, StartError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| StartError::Bind {
                addr,
                reason: e.to_string(),
            })?;
        Ok(Self {
            listener,
            router,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until SIGINT/SIGTERM or `shutdown.trigger()`. In-flight requests finish;
    /// new connections are refused. A signal flips the shared switch too, so the
    /// service's background loops stop with the server.
    pub async fn serve(self) {
        let stop = self.shutdown.clone();
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move {
                tokio::select! {
                    () = shutdown_signal() => stop.trigger(),
                    () = stop.wait() => {},
                }
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server stopped with an error");
            self.shutdown.trigger();
        }
    }
}
