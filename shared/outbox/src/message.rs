//! Writing an event into the outbox, in the caller's transaction.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::PgConnection;
use telemetry::propagation::TraceHeaders;
use uuid::Uuid;

/// An event to publish. `id` is a UUIDv7: unique, and sortable by creation time.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: Uuid,
    /// The entity the event is about (an order id, say).
    pub aggregate_id: String,
    pub topic: String,
    /// The Kafka message key. Events with one key land on one partition, in order.
    pub key: String,
    pub event_type: String,
    pub payload: Value,
    /// Extra Kafka headers (`event-id` and `event-type` are added by the relay).
    pub headers: BTreeMap<String, String>,
}

impl OutboxMessage {
    pub fn new(
        topic: impl Into<String>,
        key: impl Into<String>,
        event_type: impl Into<String>,
        payload: Value,
    ) -> Self {
        let key = key.into();
        Self {
            id: Uuid::now_v7(),
            aggregate_id: key.clone(),
            topic: topic.into(),
            key,
            event_type: event_type.into(),
            payload,
            headers: BTreeMap::new(),
        }
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// Inserts `message` using `conn`, which must be the business transaction's connection:
/// if that transaction rolls back, the event disappears with it (note, step 3).
///
/// The row also keeps the trace context of the span this runs in (the HTTP request,
/// or the consumer's `process` span): the relay sends the event under it, so the trace
/// goes on across the database hop (docs/en/07-tracing-and-metrics.md).
pub async fn enqueue(conn: &mut PgConnection, message: &OutboxMessage) -> Result<(), sqlx::Error> {
    let headers = serde_json::to_value(&message.headers).unwrap_or(Value::Null);
    let trace = TraceHeaders::current();
    let (traceparent, tracestate) = match trace {
        Some(t) => (Some(t.traceparent), t.tracestate),
        None => (None, None),
    };
    sqlx::query!(
        r#"INSERT INTO outbox (id, aggregate_id, topic, message_key, event_type, payload, headers,
                               traceparent, tracestate)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
        message.id,
        message.aggregate_id,
        message.topic,
        message.key,
        message.event_type,
        message.payload,
        headers,
        traceparent,
        tracestate,
    )
    .execute(conn)
    .await?;
    Ok(())
}
