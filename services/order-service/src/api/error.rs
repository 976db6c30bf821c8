//! API errors as RFC 9457 problem+json (`http_problem::Problem`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_problem::Problem;
use serde_json::json;

use super::idempotency::IdempotencyError;

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
    /// `POST /orders` without `Content-Type: application/json`.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// The body could not be read: too large (413) or cut off (400).
    #[error("request body: {1}")]
    BodyRejected(StatusCode, String),
    /// A path or query parameter that does not parse (`/orders/not-a-uuid`,
    /// `?limit=abc`, `?limit=0`).
    #[error("invalid {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    /// A bug: the request's task panicked. Logged; the client gets a `500`.
    #[error("internal error: {0}")]
    Internal(String),
    /// Direct mode: the order is committed, its event was not acknowledged. `logged`:
    /// the event is in the send log, so the re-push job will send it.
    #[error("order {order_id} stored, event not published: {reason}")]
    EventNotPublished {
        order_id: uuid::Uuid,
        logged: bool,
        reason: String,
    },
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
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
            ApiError::UnsupportedMediaType => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "send the order as JSON with the header Content-Type: application/json",
            ),
            ApiError::BodyRejected(status, reason) if status == StatusCode::PAYLOAD_TOO_LARGE => {
                Problem::new(
                    status,
                    "body-too-large",
                    "Request body too large",
                    format!("{reason}; an order is a few dozen bytes of JSON"),
                )
            }
            ApiError::BodyRejected(_, reason) => Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-body",
                "Malformed request body",
                reason,
            ),
            ApiError::InvalidParameter { name, reason } => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-parameter",
                "Invalid parameter",
                format!("{name}: {reason}"),
            )
            .with("parameter", name),
            ApiError::Internal(reason) => {
                tracing::error!(%reason, "internal error in request");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal-error",
                    "Internal error",
                    "the server failed on this request; GET /orders to see whether the order \
                     was stored, or retry with the same Idempotency-Key",
                )
            }
            ApiError::NotFound(id) => Problem::new(
                StatusCode::NOT_FOUND,
                "order-not-found",
                "Order not found",
                format!("no order has id {id}"),
            ),
            ApiError::Database(e) | ApiError::Idempotency(IdempotencyError::Database(e)) => {
                tracing::error!(error = %e, "database error in request");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database-unavailable",
                    "Database unavailable",
                    "the order was not stored; retry with the same Idempotency-Key",
                )
            }
            ApiError::Idempotency(IdempotencyError::InvalidKey(rule)) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                "Invalid Idempotency-Key header",
                format!(
                    "the Idempotency-Key header must be {rule}; send one key of 1 to 255 \
                     visible ASCII characters per order, e.g. a UUID, or none at all"
                ),
            )
            .with("header", "Idempotency-Key"),
            ApiError::Idempotency(IdempotencyError::KeyReused { key }) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                format!(
                    "the Idempotency-Key {key:?} was first used with a different request; \
                     resend that exact request to get its answer, or use a new key for a new order"
                ),
            )
            .with("idempotency_key", key),
            ApiError::Idempotency(IdempotencyError::InFlight { key }) => Problem::new(
                StatusCode::CONFLICT,
                "idempotency-key-in-flight",
                "Request with this Idempotency-Key in flight",
                format!(
                    "a request with the Idempotency-Key {key:?} is still being processed; \
                     retry the same request with the same key after Retry-After seconds"
                ),
            )
            .with("idempotency_key", key)
            // The first request is normally about to commit; one second is plenty.
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")),
            ApiError::EventNotPublished {
                order_id,
                logged: true,
                reason,
            } => {
                tracing::warn!(%order_id, %reason, "event not acknowledged; left to the re-push job");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "broker-unavailable",
                    "Kafka did not acknowledge the order's event",
                    format!(
                        "the order {order_id} IS stored; its OrderCreated event is in the send log \
                         and will be re-pushed when Kafka answers ({reason}). Do not send the \
                         order again without its Idempotency-Key: GET /orders/{order_id} to follow it"
                    ),
                )
                .with("order_id", order_id.to_string())
                .with_header(
                    header::RETRY_AFTER,
                    HeaderValue::from(crate::direct_publish::RETRY_AFTER.as_secs()),
                )
                .with_header(header::LOCATION, order_location(order_id))
            }
            ApiError::EventNotPublished {
                order_id,
                logged: false,
                reason,
            } => {
                // The one case direct mode loses an event without a crash: say so loudly.
                tracing::error!(%order_id, %reason, "event NOT in the send log: it will not be re-pushed");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "send-log-unavailable",
                    "The order's event could not be written to the send log",
                    format!(
                        "the order {order_id} IS stored, but its OrderCreated event was neither \
                         sent nor logged ({reason}); an operator must republish it. \
                         GET /orders/{order_id} to follow the order"
                    ),
                )
                .with("order_id", order_id.to_string())
                .with_header(header::LOCATION, order_location(order_id))
            }
        }
        .into_response()
    }
}

fn order_location(order_id: uuid::Uuid) -> HeaderValue {
    HeaderValue::from_str(&format!("/orders/{order_id}"))
        .unwrap_or_else(|_| HeaderValue::from_static("/orders"))
}

/// The shape of every error answer (`http_problem::Problem` as it serialises).
/// Only for the document: the handlers build `Problem`s.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // read by the OpenAPI derive only
pub struct ProblemDetails {
    /// A stable identifier of the problem, e.g. `/problems/invalid-order`.
    #[schema(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    /// What happened and what to do.
    detail: String,
    /// For `invalid-order`: one entry per offending field.
    errors: Option<Vec<FieldError>>,
    /// For the idempotency problems.
    idempotency_key: Option<String>,
    /// For `broker-unavailable`: the order that IS stored.
    order_id: Option<String>,
}
