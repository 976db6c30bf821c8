//! API errors as RFC 9457 problem+json (`http_problem::Problem`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use http_problem::Problem;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not the JSON we expect (syntax, or a missing/mistyped field).
    #[error("malformed request body: {0}")]
    MalformedBody(String),
    /// Well-formed but invalid: one entry per offending field.
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("order {0} not found")]
    NotFound(uuid::Uuid),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub reason: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::MalformedBody(reason) => Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-body",
                "Malformed request body",
                format!("{reason}; send JSON like {{\"customer_id\":\"c-1\",\"amount_minor\":1999,\"currency\":\"EUR\"}}"),
            ),
            ApiError::Invalid(errors) => {
                let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-order",
                    "Invalid order",
                    format!("fix the field(s) {}: see `errors`", fields.join(", ")),
                )
                .with("errors", json!(errors))
            }
            ApiError::NotFound(id) => Problem::new(
                StatusCode::NOT_FOUND,
                "order-not-found",
                "Order not found",
                format!("no order has id {id}"),
            ),
            ApiError::Database(e) => {
                tracing::error!(error = %e, "database error in request");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database-unavailable",
                    "Database unavailable",
                    "the order was not stored; retry with the same Idempotency-Key",
                )
            }
        }
        .into_response()
    }
}
