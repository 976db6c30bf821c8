//! `GET /orders/{id}` (with its timeline) and `GET /orders` (recent ones).

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{ApiError, ApiState};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    pub id: Uuid,
    pub customer_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What happened to the order, oldest first: created, event published, paid/failed.
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub what: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

#[utoipa::path(
    get,
    path = "/orders/{id}",
    tag = "orders",
    summary = "An order and its timeline",
    description = "The order with what happened to it: created, its event published (topic, \
        partition, offset, attempts), payment succeeded or failed.",
    params(("id" = Uuid, Path, description = "The order id (from the Location of POST /orders)")),
    responses(
        (status = 200, body = OrderView),
        (status = 400, description = "The id is not a UUID", body = super::openapi::ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No order has this id", body = super::openapi::ProblemDetails, content_type = "application/problem+json"),
        (status = 405, description = "Method not allowed (see Allow)", body = super::openapi::ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = super::openapi::ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable, or no answer within the request timeout",
            body = super::openapi::ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "seconds"))),
    )
)]
pub async fn get_order(
    State(state): State<ApiState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<OrderView>, ApiError> {
    // Rejected by us, not by axum: its rejection is text/plain, every error here is
    // problem+json.
    let Path(id) = id.map_err(|e| ApiError::InvalidParameter {
        name: "id",
        reason: format!(
            "{}; expected a UUID, e.g. from the Location of POST /orders",
            e.body_text()
        ),
    })?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(load_order(&mut conn, id).await?))
}

/// The order and its timeline, assembled from the order row and its outbox rows, as
/// `conn` sees them (inside `create_order`'s transaction: its own uncommitted rows).
pub async fn load_order(conn: &mut PgConnection, id: Uuid) -> Result<OrderView, ApiError> {
    let order = sqlx::query!(
        r#"SELECT id, customer_id, amount_minor, currency, status, created_at, updated_at,
                  payment_event_id, payment_reason
           FROM orders WHERE id = $1"#,
        id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(ApiError::NotFound(id))?;

    let mut timeline = vec![TimelineEntry {
        at: order.created_at,
        what: "created".into(),
        detail: None,
    }];
    let events = sqlx::query!(
        r#"SELECT id, topic, event_type, state, attempts, kafka_partition, kafka_offset,
                  created_at, sent_at, last_error
           FROM outbox WHERE aggregate_id = $1 ORDER BY seq"#,
        id.to_string()
    )
    .fetch_all(&mut *conn)
    .await?;
    for e in events {
        let detail = serde_json::json!({
            "event_id": e.id, "event_type": e.event_type, "topic": e.topic, "state": e.state,
            "partition": e.kafka_partition, "offset": e.kafka_offset, "attempts": e.attempts,
            "last_error": e.last_error,
        });
        let (at, what) = match e.sent_at {
            Some(sent) => (sent, format!("{} published", e.event_type)),
            None => (
                e.created_at,
                format!("{} waiting in the outbox", e.event_type),
            ),
        };
        timeline.push(TimelineEntry {
            at,
            what,
            detail: Some(detail),
        });
    }
    if order.status != "PENDING_PAYMENT" {
        timeline.push(TimelineEntry {
            at: order.updated_at,
            what: format!("payment result: {}", order.status),
            detail: Some(serde_json::json!({
                "payment_event_id": order.payment_event_id, "reason": order.payment_reason,
            })),
        });
    }
    Ok(OrderView {
        id: order.id,
        customer_id: order.customer_id,
        amount_minor: order.amount_minor,
        currency: order.currency,
        status: order.status,
        created_at: order.created_at,
        updated_at: order.updated_at,
        timeline,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many orders, newest first: 1 to 200 (default 20).
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 200)]
    pub limit: i64,
}

/// The most orders one `GET /orders` lists.
const MAX_LIMIT: i64 = 200;

fn default_limit() -> i64 {
    20
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderSummary {
    pub id: Uuid,
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

#[utoipa::path(
    get,
    path = "/orders",
    tag = "orders",
    summary = "Recent orders, newest first",
    params(ListQuery),
    responses(
        (status = 200, body = Vec<OrderSummary>),
        (status = 400, description = "limit is not a whole number from 1 to 200", body = super::openapi::ProblemDetails, content_type = "application/problem+json"),
        (status = 405, description = "Method not allowed (see Allow)", body = super::openapi::ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = super::openapi::ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable, or no answer within the request timeout",
            body = super::openapi::ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "seconds"))),
    )
)]
pub async fn list_orders(
    State(state): State<ApiState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<OrderSummary>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::InvalidParameter {
        name: "limit",
        reason: e.body_text(),
    })?;
    // Refused, not clamped: the document says 1 to 200, and a client asking for 1000
    // should learn it gets at most 200.
    if !(1..=MAX_LIMIT).contains(&query.limit) {
        return Err(ApiError::InvalidParameter {
            name: "limit",
            reason: format!("{} is out of range: 1 to {MAX_LIMIT}", query.limit),
        });
    }
    let limit = query.limit;
    let rows = sqlx::query_as!(
        OrderSummary,
        r#"SELECT id, status, amount_minor, currency, created_at
           FROM orders ORDER BY created_at DESC LIMIT $1"#,
        limit
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows))
}
