//! Publishing claimed rows and waiting for the broker's answer (synchronous confirm).

use std::time::Duration;

use futures::future::join_all;
use kafka_config::headers;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::ClaimedRow;

/// Sends every row and returns, per row, the broker's acknowledgement or the error.
/// Sends run concurrently; per-key order holds because a batch never has two rows of
/// one key (see `claim.rs`).
pub(super) async fn publish_all(
    producer: &FutureProducer,
    rows: &[ClaimedRow],
) -> Vec<Result<Delivery, String>> {
    join_all(rows.iter().map(|row| publish(producer, row))).await
}

async fn publish(producer: &FutureProducer, row: &ClaimedRow) -> Result<Delivery, String> {
    let payload = serde_json::to_vec(&row.payload).map_err(|e| e.to_string())?;
    let event_id = row.id.to_string();
    let mut kafka_headers = OwnedHeaders::new()
        .insert(Header {
            key: headers::EVENT_ID,
            value: Some(event_id.as_str()),
        })
        .insert(Header {
            key: headers::EVENT_TYPE,
            value: Some(row.event_type.as_str()),
        });
    if let Some(extra) = row.headers.as_object() {
        for (name, value) in extra {
            if let Some(value) = value.as_str() {
                kafka_headers = kafka_headers.insert(Header {
                    key: name,
                    value: Some(value),
                });
            }
        }
    }
    let record = FutureRecord::to(&row.topic)
        .key(&row.message_key)
        .payload(&payload)
        .headers(kafka_headers);
    // Queue timeout zero: when the producer's buffer is full, fail this send now and let
    // the row be retried later, instead of blocking the relay (the note: fail fast).
    producer
        .send(record, Duration::ZERO)
        .await
        .map_err(|(error, _message)| error.to_string())
}
