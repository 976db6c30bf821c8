//! Publishing claimed rows and learning the broker's answer.
//!
//! A send has two halves: [`enqueue`] hands the record to the producer's queue at once,
//! and [`Sent::acked`] waits for the delivery report (the broker's ack, or the error).
//! The wave mode awaits both halves of a whole batch before it marks anything
//! ([`publish_all`]); the streaming relay enqueues and goes on claiming, and marks each
//! row when its delivery report arrives (`stream.rs`).

use std::time::Instant;

use futures::future::join_all;
use kafka_config::headers;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::future_producer::{Delivery, DeliveryFuture};
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
) -> Vec<Result<Delivery, SendFailure>> {
    join_all(
        rows.iter()
            .map(|row| async move { enqueue(producer, row)?.acked(metrics).await }),
    )
    .await
}

/// A send that failed, and whether trying it again can ever succeed.
///
/// Most failures pass: a broker down or slow (`MessageTimedOut`, `AllBrokersDown`,
/// `QueueFull`), a leader moving, too few in-sync replicas. Such a row is retried for as
/// long as it takes, with a backoff capped at 30 s (`mark.rs`): an outage of any length
/// ends with every event sent, and nobody has to act. Only what no retry can fix is
/// *permanent*, and only that is ever given up (`FAILED`):
/// - the topic or partition does not exist (the cluster does not create topics);
/// - the record is too large for the broker, or invalid;
/// - the producer is not allowed to write (authorization, authentication, policy).
#[derive(Debug, Clone)]
pub(crate) struct SendFailure {
    pub reason: String,
    pub permanent: bool,
}

impl SendFailure {
    pub(super) fn transient(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            permanent: false,
        }
    }

    fn from_kafka(error: &KafkaError) -> Self {
        use RDKafkaErrorCode as C;
        let permanent = matches!(
            error.rdkafka_error_code(),
            Some(
                C::UnknownTopicOrPartition
                    | C::UnknownTopic
                    | C::UnknownPartition
                    | C::InvalidTopic
                    | C::MessageSizeTooLarge
                    | C::InvalidMessageSize
                    | C::InvalidRecord
                    | C::TopicAuthorizationFailed
                    | C::ClusterAuthorizationFailed
                    | C::TransactionalIdAuthorizationFailed
                    | C::Authentication
                    | C::SaslAuthenticationFailed
                    | C::PolicyViolation
            )
        );
        Self {
            reason: error.to_string(),
            permanent,
        }
    }
}

/// A record in the producer's hands, its delivery report still to come.
pub(super) struct Sent {
    delivery: DeliveryFuture,
    span: tracing::Span,
    started: Instant,
}

impl Sent {
    /// Waits for the delivery report: the broker's ack (with `acks=all`: every in-sync
    /// replica has the record) or the error that ended the producer's retries.
    pub(super) async fn acked(self, metrics: &RelayMetrics) -> Result<Delivery, SendFailure> {
        let span = self.span.clone();
        let report = self.delivery.instrument(self.span).await;
        match report {
            Ok(Ok(delivery)) => {
                metrics.publish_duration.record(self.started.elapsed());
                telemetry::spans::record_ack(&span, delivery.partition, delivery.offset);
                Ok(delivery)
            }
            Ok(Err((error, _message))) => {
                let failure = SendFailure::from_kafka(&error);
                telemetry::spans::record_error(&span, &failure.reason);
                Err(failure)
            }
            // The producer was dropped with the record still queued.
            Err(_canceled) => {
                let failure = SendFailure::transient("producer closed before the delivery report");
                telemetry::spans::record_error(&span, &failure.reason);
                Err(failure)
            }
        }
    }
}

/// Hands `row` to the producer's queue and returns at once. Records of one producer to
/// one partition leave in the order they were enqueued, and the idempotent producer
/// keeps that order through its retries.
pub(super) fn enqueue(producer: &FutureProducer, row: &ClaimedRow) -> Result<Sent, SendFailure> {
    // A payload that cannot be serialized never will be.
    let payload = serde_json::to_vec(&row.payload).map_err(|e| SendFailure {
        reason: e.to_string(),
        permanent: true,
    })?;
    let event_id = row.id.to_string();
    // The PRODUCER span continues the trace of the request that wrote the row: its
    // context crossed the database in the row's `traceparent` column, and crosses Kafka
    // in the message's `traceparent` header (docs/en/07-tracing-and-metrics.md).
    let span = telemetry::spans::producer(&row.topic, &event_id, &row.message_key);
    if let Some(trace) = TraceHeaders::from_columns(row.traceparent.clone(), row.tracestate.clone())
    {
        propagation::set_parent(&span, trace.context());
    }
    // The row's own headers (a JSON object of strings) follow the id and the type.
    let extra = row.headers.as_object().into_iter().flatten();
    let kafka_headers = headers::for_event(
        &event_id,
        &row.event_type,
        extra.filter_map(|(name, value)| Some((name.as_str(), value.as_str()?))),
    );
    let kafka_headers = propagation::inject_kafka(&span, kafka_headers);
    let record = FutureRecord::to(&row.topic)
        .key(&row.message_key)
        .payload(&payload)
        .headers(kafka_headers);
    let started = Instant::now();
    // No waiting for room: when the producer's buffer is full, fail this send now and
    // let the row be retried later, instead of blocking the relay (the note: fail fast).
    let enqueued = span.in_scope(|| producer.send_result(record).map_err(|(error, _)| error));
    match enqueued {
        Ok(delivery) => Ok(Sent {
            delivery,
            span,
            started,
        }),
        Err(error) => {
            let failure = SendFailure::from_kafka(&error);
            telemetry::spans::record_error(&span, &failure.reason);
            Err(failure)
        }
    }
}
