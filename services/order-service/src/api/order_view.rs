//! What a client sees of an order: the order with its timeline (`GET /orders/{id}`, and
//! the body of `POST /orders`), or a line of the list (`GET /orders`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::ApiError;

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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderSummary {
    pub id: Uuid,
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
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
    for e in outbox::events_of(&mut *conn, &id.to_string()).await? {
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
