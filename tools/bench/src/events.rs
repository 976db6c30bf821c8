//! The messages the bench moves: real `OrderCreated` events (order-service's own type),
//! so the relay, the raw producer and the consumer all handle messages of the size the
//! services produce.

use chrono::{SubsecRound, Utc};
use kafka_config::headers;
use order_service::events::{ORDER_CREATED, OrderCreated, SCHEMA_VERSION};
use outbox::OutboxMessage;
use rdkafka::message::{Header, OwnedHeaders};
use serde_json::Value;
use uuid::Uuid;

/// One `OrderCreated`: its event id, key (the order id) and JSON payload.
#[derive(Debug, Clone)]
pub struct BenchEvent {
    pub event_id: Uuid,
    pub key: String,
    pub payload: Value,
}

impl BenchEvent {
    pub fn new(i: u64) -> Self {
        let order_id = Uuid::now_v7();
        let event = OrderCreated {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            order_id,
            customer_id: format!("bench-{}", i % 1_000),
            // Ends in 01: the simulated provider approves it.
            amount_minor: 1_001 + (i % 90) as i64 * 100,
            currency: "EUR".into(),
            created_at: Utc::now().trunc_subsecs(6),
        };
        Self {
            event_id: event.event_id,
            key: order_id.to_string(),
            payload: serde_json::to_value(&event).unwrap_or_default(),
        }
    }

    /// As order-service writes it into its outbox.
    pub fn outbox_message(&self, topic: &str) -> OutboxMessage {
        let mut message =
            OutboxMessage::new(topic, self.key.clone(), ORDER_CREATED, self.payload.clone())
                .with_header("schema-version", SCHEMA_VERSION.to_string());
        message.id = self.event_id;
        message
    }

    /// The bytes the relay sends: `serde_json::to_vec` of the stored payload.
    pub fn payload_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.payload).unwrap_or_default()
    }

    /// The headers the relay sends: event id, event type, and the row's extra headers.
    pub fn kafka_headers(&self) -> OwnedHeaders {
        let event_id = self.event_id.to_string();
        let version = SCHEMA_VERSION.to_string();
        OwnedHeaders::new()
            .insert(Header {
                key: headers::EVENT_ID,
                value: Some(event_id.as_str()),
            })
            .insert(Header {
                key: headers::EVENT_TYPE,
                value: Some(ORDER_CREATED),
            })
            .insert(Header {
                key: "schema-version",
                value: Some(version.as_str()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_reads_back_as_order_created() {
        let e = BenchEvent::new(7);
        let back: OrderCreated = serde_json::from_slice(&e.payload_bytes()).expect("OrderCreated");
        assert_eq!(back.event_id, e.event_id);
        assert_eq!(back.order_id.to_string(), e.key);
        assert!(back.amount_minor > 0 && back.amount_minor % 100 != 13);
        let m = e.outbox_message("t");
        assert_eq!(
            (m.id, m.key.as_str(), m.event_type.as_str()),
            (e.event_id, e.key.as_str(), ORDER_CREATED)
        );
    }
}
