//! The HTTP API.
//!
//! # Idempotency-Key
//!
//! `POST /orders` takes an optional `Idempotency-Key` header: 1 to 255 visible ASCII
//! characters, e.g. a UUID the client makes once per order and sends again on every
//! retry of that order. What the client gets:
//!
//! - **same key, same request** (method, path, body bytes): the first answer again, with
//!   its status (`201`), body and `Location`, plus `Idempotent-Replayed: true`. No
//!   second order, even if the first answer was lost to a crash after the commit. The
//!   body is the order as it was created; `GET` the `Location` for its current state.
//! - **same key, different request**: `422` `/problems/idempotency-key-reused`.
//! - **same key while the first request is still running**: the second request waits
//!   for the first (up to 5 s) and then gets its answer; past that, `409`
//!   `/problems/idempotency-key-in-flight` with `Retry-After: 1`.
//! - **a rejected body** (`400`, `422` invalid-order) is not remembered: fix the body
//!   and send it again with the same key.
//! - **retention**: a key is remembered for `IDEMPOTENCY_RETENTION_HOURS` (default 24)
//!   after its first use; after that the same key creates a new order.
//! - **a malformed key**: `400` `/problems/invalid-idempotency-key`. No key at all: every
//!   `POST` creates an order.
//!
//! # `PUBLISH_MODE=direct`
//!
//! The order is committed, then its event is sent to Kafka before the answer. When the
//! broker does not acknowledge in time (or the producer's queue is full) the answer is
//! `503` `/problems/broker-unavailable` with `Retry-After: 5`: the order **is** stored
//! (its id and `Location` are in the answer) and the event is re-pushed from the send
//! log. A retry with the same `Idempotency-Key` returns the stored order; a retry
//! without one would create a second order.

mod create_order;
mod error;
pub mod idempotency;
mod openapi;
mod order_view;
mod read_orders;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use sqlx::PgPool;

use crate::direct_publish::DirectPublisher;

pub use error::ApiError;
pub use openapi::ApiDoc;

/// The largest `POST /orders` body: an order is under 200 bytes; anything near this is
/// not one (`413` problem+json).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub order_events_topic: String,
    /// How long an idempotency key and its answer are kept.
    pub idempotency_retention: Duration,
    /// `Some` in `PUBLISH_MODE=direct`: the event is sent after the commit, not written
    /// to the outbox.
    pub direct: Option<DirectPublisher>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(
            "/orders",
            post(create_order::create_order)
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
                .get(read_orders::list_orders),
        )
        .route("/orders/{id}", get(read_orders::get_order))
        .with_state(state)
        .merge(openapi::routes())
}
