//! `PUBLISH_MODE=direct`: the study note's **log-based persistence** alternative to the
//! outbox (docs/en/02-produce.md, "The log-based alternative").
//!
//! `POST /orders` commits the order alone (no outbox row), then:
//!
//! 1. appends a `pending` line with the whole event to the local send log
//!    ([`send_log`]), flushed to disk;
//! 2. sends the event with the reliable producer (acks=all, idempotent) and **waits for
//!    the ack**;
//! 3. appends `acked` (partition, offset) or `failed` (the error);
//! 4. answers `201`, or `503` `/problems/broker-unavailable` when the event was not
//!    acknowledged. The order is stored either way; the re-push job ([`repush`]) sends
//!    every event whose last line is not `acked` again.
//!
//! # The trade-off against the outbox
//!
//! - **Latency**: the event leaves during the request, not on the relay's next pass.
//! - **Cost**: no outbox table, no claim/lease/mark bookkeeping in Postgres; a file
//!   append and an `fsync` per line instead.
//! - **The loss window (crash point A2)**: the order commits in Postgres and the event
//!   is first written down in the send log — two stores, no common transaction. A crash
//!   after the commit and before the `pending` line is on disk leaves an order whose
//!   event exists nowhere: nothing will ever send it. The outbox has no such window.
//! - **The log is local to one machine**: if the disk or the machine is lost, so are
//!   the unsent events; only a process on this machine can re-push them, and two
//!   instances must not share one file.
//! - **Duplicates**: a re-push after a lost ack (or of a `pending` line whose request
//!   died mid-send) sends the event a second time, with the same `event-id`; the
//!   consumer's inbox absorbs it, exactly as for the relay's crash point R2.
//!
//! # Fail fast
//!
//! The producer here has a small local queue and a short delivery timeout, and every
//! send is queued with a zero wait: with Kafka unreachable a request fails in at most
//! [`DELIVERY_TIMEOUT`] (plus a second of slack), and at once when the queue is full,
//! instead of holding a connection and a thread (the note: "business systems should
//! not block").

mod repush;
mod send_log;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kafka_config::{ProducerSettings, headers};
use lifecycle::Shutdown;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use telemetry::propagation::{self, TraceHeaders};
use tracing::Instrument;
use uuid::Uuid;

pub use repush::{COMPACT_AFTER_SETTLED, REPUSH_MAX_PER_PASS, RepushReport};
pub use send_log::{
    Compaction, LogFile, LoggedEvent, PausedAppends, SendLog, SendLogError, SendLogLine,
    SendStatus, Unsettled, read_lines,
};

/// How long the broker has to acknowledge a send, retries included (the producer's
/// `delivery.timeout.ms`). Short, because a request waits for it.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The producer's local queue: small, so a broker outage fills it quickly and further
/// requests are refused at once instead of piling up (each one holds a connection).
pub const QUEUE_MAX_MESSAGES: u32 = 1_000;
/// The `Retry-After` of the `503`: the re-push job's period.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);
/// A `pending` line with no outcome younger than this may still belong to a request
/// waiting for its ack; the re-push job leaves it alone.
pub const IN_FLIGHT_GRACE: Duration = Duration::from_secs(15);

/// The reliable producer's settings with the fail-fast changes of direct mode.
pub fn producer_settings(bootstrap_servers: &str) -> ProducerSettings {
    let mut settings = ProducerSettings::reliable(bootstrap_servers);
    settings.delivery_timeout_ms = u32::try_from(DELIVERY_TIMEOUT.as_millis()).unwrap_or(5_000);
    settings.queue_max_messages = QUEUE_MAX_MESSAGES;
    settings
}

/// [`producer_settings`] with a local queue of `queue_max_messages`
/// (`DIRECT_QUEUE_MAX_MESSAGES`).
pub fn producer_settings_with_queue(
    bootstrap_servers: &str,
    queue_max_messages: u32,
) -> ProducerSettings {
    let mut settings = producer_settings(bootstrap_servers);
    settings.queue_max_messages = queue_max_messages;
    settings
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The producer's local queue is full: refused without waiting.
    #[error("the producer's local queue is full")]
    QueueFull,
    /// The broker did not acknowledge within the delivery timeout, or refused.
    #[error("the broker did not acknowledge: {0}")]
    NotAcked(String),
    /// The `pending` line could not be written: the event was not sent.
    #[error(transparent)]
    Log(#[from] SendLogError),
}

/// Where the broker put the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

/// The send log and the producer that direct mode sends with. Cheap to clone.
#[derive(Clone)]
pub struct DirectPublisher {
    log: Arc<SendLog>,
    producer: FutureProducer,
    compact_after_settled: usize,
}

impl std::fmt::Debug for DirectPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectPublisher")
            .field("send_log", &self.log.path())
            .finish_non_exhaustive()
    }
}

/// Why a `DirectPublisher` could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DirectPublishError {
    #[error(transparent)]
    Log(#[from] SendLogError),
    #[error("kafka producer: {0}")]
    Producer(#[from] KafkaError),
}

impl DirectPublisher {
    /// Opens the send log at `send_log_path` and creates the fail-fast producer.
    pub async fn new(
        bootstrap_servers: &str,
        send_log_path: impl Into<PathBuf>,
    ) -> Result<Self, DirectPublishError> {
        Self::with_settings(producer_settings(bootstrap_servers), send_log_path).await
    }

    /// As `new`, with other producer settings (tests shrink the queue).
    pub async fn with_settings(
        settings: ProducerSettings,
        send_log_path: impl Into<PathBuf>,
    ) -> Result<Self, DirectPublishError> {
        let log = SendLog::open(send_log_path).await?;
        Self::with_log(settings, log)
    }

    /// As `with_settings`, writing to `log` (tests inject a failing file).
    pub fn with_log(settings: ProducerSettings, log: SendLog) -> Result<Self, DirectPublishError> {
        let mut config = settings.client_config();
        // One request must not outlive the delivery timeout it belongs to; the shared
        // default (10 s) is longer than our 5 s and would only produce a warning.
        let request_timeout = settings
            .delivery_timeout_ms
            .saturating_sub(1_000)
            .max(1_000);
        config.set("request.timeout.ms", request_timeout.to_string());
        Ok(Self {
            log: Arc::new(log),
            producer: config.create()?,
            compact_after_settled: COMPACT_AFTER_SETTLED,
        })
    }

    /// Compact the log once it holds `settled` settled events (default
    /// [`COMPACT_AFTER_SETTLED`]; tests use fewer).
    #[must_use]
    pub fn with_compaction_after(mut self, settled: usize) -> Self {
        self.compact_after_settled = settled.max(1);
        self
    }

    pub fn send_log(&self) -> &Arc<SendLog> {
        &self.log
    }

    /// Logs `pending`, sends, waits for the ack, logs the outcome. An `Err` other than
    /// `Log` means the event is in the log and the re-push job will send it.
    pub async fn publish(
        &self,
        event_id: Uuid,
        event: &LoggedEvent,
    ) -> Result<Delivered, PublishError> {
        // Before the send: from here on the event survives a crash (it is on disk).
        self.log
            .append(event_id, SendStatus::Pending(event.clone()))
            .await?;
        let outcome = self.send(event_id, event).await;
        let line = match &outcome {
            Ok(d) => SendStatus::Acked {
                partition: d.partition,
                offset: d.offset,
            },
            Err(e) => SendStatus::Failed {
                error: e.to_string(),
            },
        };
        // A lost `acked` line only costs a duplicate (the event is re-pushed); a lost
        // `failed` line only a delay (the `pending` line is re-pushed after the grace).
        if let Err(error) = self.log.append(event_id, line).await {
            tracing::warn!(%event_id, %error, "could not log the send's outcome");
        }
        outcome
    }

    /// The re-push job's send: the event's `pending` line is already in the log, so only
    /// an ack is written. A failure writes nothing: the log does not grow while Kafka is
    /// down, however long the outage (docs/en/02-produce.md).
    pub async fn resend(
        &self,
        event_id: Uuid,
        event: &LoggedEvent,
    ) -> Result<Delivered, PublishError> {
        let delivered = self.send(event_id, event).await?;
        let acked = SendStatus::Acked {
            partition: delivered.partition,
            offset: delivered.offset,
        };
        if let Err(error) = self.log.append(event_id, acked).await {
            // Only a duplicate: the next pass sends it again, the inbox skips the copy.
            tracing::warn!(%event_id, %error, "could not log the re-push's ack");
        }
        Ok(delivered)
    }

    /// One send with the ack awaited, bounded by the delivery timeout.
    async fn send(&self, event_id: Uuid, event: &LoggedEvent) -> Result<Delivered, PublishError> {
        let payload = serde_json::to_vec(&event.payload)
            .map_err(|e| PublishError::NotAcked(e.to_string()))?;
        let id = event_id.to_string();
        // The same PRODUCER span as the relay's, under the request that accepted the
        // order (its context is in the send log, so a re-push continues it too), and
        // injected into the headers for the consumer (docs/en/07-tracing-and-metrics.md).
        let span = telemetry::spans::producer(&event.topic, &id, &event.key);
        if let Some(trace) =
            TraceHeaders::from_columns(event.traceparent.clone(), event.tracestate.clone())
        {
            propagation::set_parent(&span, trace.context());
        }
        let kafka_headers = headers::for_event(
            &id,
            &event.event_type,
            event.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        );
        let kafka_headers = propagation::inject_kafka(&span, kafka_headers);
        let record = FutureRecord::to(&event.topic)
            .key(&event.key)
            .payload(&payload)
            .headers(kafka_headers);
        // Queue timeout zero: a full local queue fails this send now (fail fast); the
        // delivery timeout bounds the wait for the ack. The outer timeout is a belt in
        // case a delivery report never comes: a request must never hang.
        let sent = tokio::time::timeout(
            DELIVERY_TIMEOUT + Duration::from_secs(1),
            self.producer.send(record, Duration::ZERO),
        )
        .instrument(span.clone())
        .await;
        let outcome = match sent {
            Ok(Ok(delivery)) => Ok(Delivered {
                partition: delivery.partition,
                offset: delivery.offset,
            }),
            Ok(Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))) => {
                Err(PublishError::QueueFull)
            }
            Ok(Err((error, _))) => Err(PublishError::NotAcked(error.to_string())),
            Err(_) => Err(PublishError::NotAcked(format!(
                "no delivery report within {:?}",
                DELIVERY_TIMEOUT + Duration::from_secs(1)
            ))),
        };
        match &outcome {
            Ok(d) => telemetry::spans::record_ack(&span, d.partition, d.offset),
            Err(e) => telemetry::spans::record_error(&span, &e.to_string()),
        }
        outcome
    }

    /// One pass of the re-push job: sends every unsettled event of the send log again
    /// (see [`repush`]).
    pub async fn repush_once(&self) -> Result<RepushReport, SendLogError> {
        repush::repush_once(self, IN_FLIGHT_GRACE, self.compact_after_settled).await
    }

    /// As `repush_once`, with another in-flight grace (tests and drills use zero).
    pub async fn repush_once_with_grace(
        &self,
        in_flight_grace: Duration,
    ) -> Result<RepushReport, SendLogError> {
        repush::repush_once(self, in_flight_grace, self.compact_after_settled).await
    }

    /// The re-push job: a pass every [`RETRY_AFTER`] until shutdown, then a flush.
    pub async fn run_repush(self, shutdown: Shutdown) {
        repush::run(&self, shutdown).await;
        if let Err(error) = self.producer.flush(Duration::from_secs(10)) {
            tracing::warn!(%error, "direct-mode producer flush on shutdown");
        }
    }
}
