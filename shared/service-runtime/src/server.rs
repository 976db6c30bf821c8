//! The HTTP side of a service: bound listener, router, timeouts, graceful shutdown.
//!
//! # Timeouts
//!
//! Each one bounds what a client can hold without doing its part:
//!
//! - [`HEADER_READ_TIMEOUT`]: a connection must deliver a request's headers within it
//!   (also the wait for the next request on a kept-alive connection). Without it a
//!   client sending a byte a minute holds a connection, a task and a file descriptor
//!   for ever (slowloris). `axum::serve` sets no timer, so hyper's own timeout never
//!   fires there: this module runs its own accept loop with hyper-util.
//! - [`REQUEST_TIMEOUT`]: the answer, body read included, is due within it; past it the
//!   client gets `503` problem+json `/problems/request-timeout` with `Retry-After`. It is
//!   longer than the longest wait a handler has on purpose (order-service: 5 s for a key
//!   in flight plus 6 s for a direct-mode ack). Work that must not be cut short runs in
//!   a task of its own (order-service's `create_order`): the timeout drops the answer,
//!   never the work.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_problem::Problem;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use lifecycle::{Shutdown, shutdown_signal};

use crate::StartError;

/// How long a client has to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request may take, from its headers to the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long in-flight requests get to finish once shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound, not yet serving, HTTP server.
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
    header_read_timeout: Duration,
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
            router: with_request_timeout(router, REQUEST_TIMEOUT)
                // Outermost: every error answer leaves as problem+json, axum's own
                // (404, 405, rejections) included.
                .layer(axum::middleware::from_fn(http_problem::errors_as_problems)),
            shutdown,
            header_read_timeout: HEADER_READ_TIMEOUT,
        })
    }

    /// As `bind`'s server, with other timeouts (tests shorten them).
    #[must_use]
    pub fn with_timeouts(mut self, header_read: Duration, request: Duration) -> Self {
        self.header_read_timeout = header_read;
        self.router = with_request_timeout(self.router, request);
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until SIGINT/SIGTERM or `shutdown.trigger()`. In-flight requests finish
    /// (for up to 30 s); new connections are refused. A signal flips the shared switch
    /// too, so the service's background loops stop with the server.
    pub async fn serve(self) {
        let stop = self.shutdown.clone();
        let stopping = async move {
            tokio::select! {
                () = shutdown_signal() => stop.trigger(),
                () = stop.wait() => {},
            }
        };
        tokio::pin!(stopping);
        // HTTP/1.1 only, as before (axum's `http1` feature).
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout);
        let graceful = GracefulShutdown::new();
        loop {
            let (stream, _) = tokio::select! {
                () = &mut stopping => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait, do not spin.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let service = TowerToHyperService::new(self.router.clone());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish within {DRAIN_TIMEOUT:?}");
        }
    }
}

/// Wraps `router` so every request is answered within `limit`.
fn with_request_timeout(router: Router, limit: Duration) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| async move {
            match tokio::time::timeout(limit, next.run(request)).await {
                Ok(response) => response,
                Err(_) => timed_out(limit),
            }
        },
    ))
}

fn timed_out(limit: Duration) -> Response {
    tracing::warn!(?limit, "request timed out");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "request-timeout",
        "Request timed out",
        format!(
            "no answer within {}s; retry after Retry-After seconds (with the same \
             Idempotency-Key for an order)",
            limit.as_secs()
        ),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    .into_response()
}
