//! Reading an aggregate's events back out of the outbox: where each one is (waiting,
//! sent, failed) and, once sent, where it landed in Kafka. A service shows them as the
//! "published" steps of its entity's timeline (order-service's `GET /orders/{id}`).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// One outbox row of an aggregate, as a view shows it.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub id: Uuid,
    pub topic: String,
    pub event_type: String,
    /// `PENDING`, `SENDING`, `SENT` or `FAILED`.
    pub state: String,
    pub attempts: i32,
    /// Where the broker stored it: set once the row is `SENT`.
    pub kafka_partition: Option<i32>,
    pub kafka_offset: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// The outbox rows of `aggregate_id`, in the order they were written, as `conn` sees
/// them (inside the writing transaction: its own uncommitted rows too).
pub async fn events_of(
    conn: &mut PgConnection,
    aggregate_id: &str,
) -> Result<Vec<OutboxEvent>, sqlx::Error> {
    sqlx::query_as!(
        OutboxEvent,
        r#"SELECT id, topic, event_type, state, attempts, kafka_partition, kafka_offset,
                  created_at, sent_at, last_error
           FROM outbox WHERE aggregate_id = $1 ORDER BY seq"#,
        aggregate_id
    )
    .fetch_all(conn)
    .await
}
