//! `GET /orders/{id}` (with its timeline) and `GET /orders` (recent ones).

use axum::Json;
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
        (status = 404, body = super::openapi::ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn get_order(
    State(state): State<ApiState>,
    Path(id): Path<Uuid>,
) -> Result<Json<OrderView>, ApiError> {
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
    pub limit: i64,
}

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
    responses((status = 200, body = Vec<OrderSummary>))
)]
pub async fn list_orders(
    State(state): State<ApiState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<OrderSummary>>, ApiError> {
    let limit = query.limit.clamp(1, 200);
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
