//! The HTTP API.

mod create_order;
mod error;
mod read_orders;

use axum::Router;
use axum::routing::{get, post};
use sqlx::PgPool;

pub use error::ApiError;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub order_events_topic: String,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(
            "/orders",
            post(create_order::create_order).get(read_orders::list_orders),
        )
        .route("/orders/{id}", get(read_orders::get_order))
        .with_state(state)
}
