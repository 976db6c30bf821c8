//! Publishing claimed rows and waiting for the broker's answer (synchronous confirm).

use std::time::{Duration, Instant};

use futures::future::join_all;
use kafka_config::headers;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::{FutureProducer, FutureRecord};
use telemetry::propagation::{self, TraceHeaders};
use tracing::Instrument;

use super::ClaimedRow;
use super::metrics::RelayMetrics;

/// Sends every row and returns, per row, the broker's acknowledgement or the error.
/// Sends run concurrently; per-key order holds because a batch never has two rows of
/// one key (see `claim.rs`).
pub(super) async fn publish_all(
    producer: &FutureProducer,
    rows: &[ClaimedRow],
    metrics: &RelayMetrics,
) -> Vec<Result<Delivery, String>> {
    join_all(rows.iter().map(|row| publish(producer, row, metrics))).await
}

async fn publish(
    producer: &FutureProducer,
    row: &ClaimedRow,
    metrics: &RelayMetrics,
) -> Result<Delivery, String> {
    let payload = serde_json::to_vec(&row.payload).map_err(|e| e.to_string())?;
    let event_id = row.id.to_string();
    // The PRODUCER span continues the trace of the request that wrote the row: its
    // context crossed the database in the row's `traceparent` column, and crosses Kafka
    // in the message's `traceparent` header (docs/en/07-tracing-and-metrics.md).
    let span = telemetry::spans::producer(&row.topic, &event_id, &row.message_key);
    if let Some(trace) = TraceHeaders::from_columns(row.traceparent.clone(), row.tracestate.clone())
    {
        propagation::set_parent(&span, trace.context());
    }
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
    let kafka_headers = propagation::inject_kafka(&span, kafka_headers);
    let record = FutureRecord::to(&row.topic)
        .key(&row.message_key)
        .payload(&payload)
        .headers(kafka_headers);
    let started = Instant::now();
    // Queue timeout zero: when the producer's buffer is full, fail this send now and let
    // the row be retried later, instead of blocking the relay (the note: fail fast).
    let sent = producer
        .send(record, Duration::ZERO)
        .instrument(span.clone())
        .await;
    match sent {
        Ok(delivery) => {
            metrics.publish_duration.record(started.elapsed());
            telemetry::spans::record_ack(&span, delivery.partition, delivery.offset);
            Ok(delivery)
        }
        Err((error, _message)) => {
            let error = error.to_string();
            telemetry::spans::record_error(&span, &error);
            Err(error)
        }
    }
}
