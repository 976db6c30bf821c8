//! The loop itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_config::headers;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use service_runtime::Shutdown;
use telemetry::Metrics;
use telemetry::propagation;
use tracing::{Instrument, Span};

use crate::counters::LoopCounters;
use crate::{DedupLayer, HandleError, Handled, Handler, ReceivedMessage};

/// Where to consume from and where rejected messages go.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub bootstrap_servers: String,
    pub group_id: String,
    pub topics: Vec<String>,
    /// Permanent failures are published here, with the reason in headers.
    pub dead_letter_topic: String,
    /// Cap of the exponential backoff between retries of a transient failure.
    pub max_backoff: Duration,
    /// When the offset is committed: after the effect (safe, the default) or before it
    /// (an unsafe teaching toggle, `CONSUMER_OFFSET_COMMIT=before-effect`).
    pub offset_commit: OffsetCommit,
}

/// The consume stage's one decision: commit the offset before or after the effect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OffsetCommit {
    /// Store the offset only once the effect is durable: a crash re-delivers, the
    /// inbox absorbs the duplicate. At-least-once.
    #[default]
    AfterEffect,
    /// UNSAFE, for the failure drills only: commit the offset (synchronously) as soon
    /// as the message arrives, then apply it. A crash in between skips the message for
    /// good: at-most-once, the loss the study note warns about.
    BeforeEffect,
}

impl std::str::FromStr for OffsetCommit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "after-effect" => Ok(Self::AfterEffect),
            "before-effect" => Ok(Self::BeforeEffect),
            other => Err(format!(
                "expected after-effect or before-effect (unsafe), got {other:?}"
            )),
        }
    }
}

impl ConsumerSettings {
    /// One topic, its dead-letter topic `<topic>.dlq`, backoff capped at 30 s.
    pub fn new(bootstrap_servers: &str, group_id: &str, topic: &str) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.to_owned(),
            group_id: group_id.to_owned(),
            topics: vec![topic.to_owned()],
            dead_letter_topic: kafka_config::dead_letter_topic(topic),
            max_backoff: Duration::from_secs(30),
            offset_commit: OffsetCommit::AfterEffect,
        }
    }
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    Applied {
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// A copy of a message already applied; `layer` recognised it.
    Duplicate {
        topic: String,
        partition: i32,
        offset: i64,
        layer: DedupLayer,
    },
    DeadLettered {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
}

impl Processed {
    pub fn topic(&self) -> &str {
        match self {
            Self::Applied { topic, .. }
            | Self::Duplicate { topic, .. }
            | Self::DeadLettered { topic, .. } => topic,
        }
    }

    /// Writes the outcome onto the message's `process` span: a duplicate shows as
    /// `duplicate=true, suppressed_by=<layer>` in the trace.
    fn record_on(&self, span: &Span) {
        match self {
            Self::Applied { .. } => {
                span.record("outcome", "applied");
            }
            Self::Duplicate { layer, .. } => {
                span.record("outcome", "duplicate");
                span.record("duplicate", true);
                span.record("suppressed_by", layer.as_str());
            }
            Self::DeadLettered { reason, .. } => {
                span.record("outcome", "dead_lettered");
                telemetry::spans::record_error(span, reason);
            }
        }
    }
}

/// A consumer group member that applies each message before storing its offset.
pub struct MessageConsumer<H> {
    /// Shared with the lag sampler, which reads positions and watermarks beside the loop.
    consumer: Arc<StreamConsumer>,
    dead_letters: FutureProducer,
    handler: H,
    settings: ConsumerSettings,
    counters: Arc<LoopCounters>,
    metrics: Metrics,
}

impl<H> std::fmt::Debug for MessageConsumer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageConsumer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<H: Handler> MessageConsumer<H> {
    /// Creates the consumer (see `kafka_config::at_least_once_consumer`) and subscribes.
    pub fn new(settings: ConsumerSettings, handler: H) -> Result<Self, KafkaError> {
        // No rebalance callback is needed to hand partitions over cleanly: with
        // `enable.auto.commit=true`, librdkafka itself commits the stored offsets of the
        // partitions it removes from the assignment, eagerly or cooperatively revoked
        // (`rd_kafka_assignment_serve_removals` in librdkafka's rdkafka_assignment.c).
        // A revocation is served inside `recv()`, between two messages, so every stored
        // offset belongs to a message whose effect is committed: the new owner resumes
        // right after it, and nothing is re-delivered (tests/consumer_loop/rebalance.rs).
        let consumer: StreamConsumer =
            kafka_config::at_least_once_consumer(&settings.bootstrap_servers, &settings.group_id)
                .create()?;
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        // Dead letters are written as reliably as events: acks=all, idempotent.
        let dead_letters: FutureProducer =
            kafka_config::ProducerSettings::reliable(&settings.bootstrap_servers)
                .client_config()
                .create()?;
        // Counted into a registry of its own until the service hands it its own.
        let metrics = Metrics::default();
        Ok(Self {
            consumer: Arc::new(consumer),
            dead_letters,
            handler,
            counters: Arc::new(LoopCounters::new(metrics.clone(), &settings.topics)),
            settings,
            metrics,
        })
    }

    /// Counts into `metrics` (the service's registry, served at `GET /metrics`). Call
    /// it before [`MessageConsumer::counters`]: it starts the counters afresh.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.counters = Arc::new(LoopCounters::new(metrics.clone(), &self.settings.topics));
        self.metrics = metrics.clone();
        self
    }

    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The loop's counters (consumed, applied, duplicates by layer, dead-lettered,
    /// retried); they keep counting after `run` takes the consumer.
    pub fn counters(&self) -> Arc<LoopCounters> {
        Arc::clone(&self.counters)
    }

    /// Waits up to `wait` for one message and processes it to the end (applied or
    /// dead-lettered, offset stored). `Ok(None)`: nothing arrived (or shutdown came
    /// first), or shutdown came while a transient failure was being retried (offset not
    /// stored: it comes again).
    pub async fn consume_once(
        &self,
        wait: Duration,
        shutdown: &Shutdown,
    ) -> Result<Option<Processed>, KafkaError> {
        // Shutdown may cut short only the wait for a message. A message in hand is
        // finished below: cancelling it between the handler's commit and the offset
        // store would hand an applied message to the next instance (a duplicate that
        // a graceful stop has no reason to make).
        let received = tokio::select! {
            () = shutdown.wait() => return Ok(None),
            received = tokio::time::timeout(wait, self.consumer.recv()) => received,
        };
        let message = match received {
            Err(_) => return Ok(None),
            Ok(received) => ReceivedMessage::from_borrowed(&received?),
        };
        self.counters.consumed(&message.topic);
        // The CONSUMER span, child of the producer's span whose context the message
        // carries in its `traceparent` header: one trace from the HTTP request on
        // (docs/en/07-tracing-and-metrics.md).
        let span = telemetry::spans::consumer(
            &message.topic,
            message.partition,
            message.offset,
            &self.settings.group_id,
        );
        propagation::set_parent(&span, propagation::extract(|name| message.header(name)));
        if let Some(event_id) = message.header(headers::EVENT_ID) {
            span.record("messaging.message.id", event_id);
        }
        let started = Instant::now();
        if self.settings.offset_commit == OffsetCommit::BeforeEffect {
            // The unsafe toggle: the group now believes this message is done.
            let mut done = rdkafka::TopicPartitionList::new();
            done.add_partition_offset(
                &message.topic,
                message.partition,
                rdkafka::Offset::Offset(message.offset + 1),
            )?;
            self.consumer
                .commit(&done, rdkafka::consumer::CommitMode::Sync)?;
        }
        let Some(outcome) = self
            .process(&message, shutdown)
            .instrument(span.clone())
            .await
        else {
            return Ok(None);
        };
        outcome.record_on(&span);
        self.counters.finished(&outcome, started.elapsed());
        // Crash point C2: the effect is committed, the offset is not. A restart
        // re-delivers this message; the handler's inbox recognises it.
        service_runtime::crash_point("C2");
        // The offset is stored only now, after the effect (or the dead letter) is
        // durable. Committing first would lose the message on a crash (at-most-once).
        self.consumer
            .store_offset(&message.topic, message.partition, message.offset)?;
        Ok(Some(outcome))
    }

    /// Consumes until `shutdown`; on shutdown it finishes the message in hand, then
    /// drops the consumer, which commits the stored offsets as it leaves the group.
    pub async fn run(self, shutdown: Shutdown) {
        let lag = tokio::spawn(crate::lag::sample_periodically(
            Arc::clone(&self.consumer),
            self.metrics.clone(),
            shutdown.clone(),
        ));
        while !shutdown.is_triggered() {
            // Not raced against `shutdown` here: `consume_once` watches it itself, at the
            // points where stopping is safe (waiting for a message, between retries).
            if let Err(error) = self.consume_once(Duration::from_secs(1), &shutdown).await {
                tracing::warn!(%error, group = %self.settings.group_id, "consume failed");
                tokio::select! {
                    () = shutdown.wait() => {},
                    () = tokio::time::sleep(Duration::from_millis(500)) => {},
                }
            }
        }
        if let Err(error) = self
            .consumer
            .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        {
            // "No offset" is normal when nothing was consumed.
            tracing::debug!(%error, "final offset commit");
        }
        // The sampler stops on the same switch; waiting for it means this task drops
        // the last handle, so the consumer leaves its group here, not in the sampler.
        let _ = lag.await;
        tracing::info!(group = %self.settings.group_id, "consumer stopped");
    }

    /// Applies the message, retrying transient failures until success or shutdown;
    /// dead-letters permanent ones.
    async fn process(&self, message: &ReceivedMessage, shutdown: &Shutdown) -> Option<Processed> {
        let mut attempt: u32 = 0;
        loop {
            let result = match self.handler.handle(message).await {
                Ok(Handled::Applied) => Ok(Processed::Applied {
                    topic: message.topic.clone(),
                    partition: message.partition,
                    offset: message.offset,
                }),
                Ok(Handled::Duplicate(layer)) => Ok(Processed::Duplicate {
                    topic: message.topic.clone(),
                    partition: message.partition,
                    offset: message.offset,
                    layer,
                }),
                Err(HandleError::Permanent(reason)) => self
                    .dead_letter(message, &reason)
                    .await
                    .map(|()| Processed::DeadLettered {
                        topic: message.topic.clone(),
                        partition: message.partition,
                        offset: message.offset,
                        reason,
                    }),
                Err(transient @ HandleError::Transient(_)) => Err(transient.to_string()),
            };
            match result {
                Ok(outcome) => return Some(outcome),
                Err(error) => {
                    attempt = attempt.saturating_add(1);
                    let delay = backoff_with_jitter(attempt, self.settings.max_backoff);
                    tracing::warn!(
                        %error, attempt, delay_ms = delay.as_millis() as u64,
                        topic = %message.topic, partition = message.partition, offset = message.offset,
                        "handling failed; retrying the same message"
                    );
                    tokio::select! {
                        () = shutdown.wait() => return None,
                        () = tokio::time::sleep(delay) => self.counters.retried(&message.topic),
                    }
                }
            }
        }
    }

    /// Publishes the original message to the dead-letter topic with the reason and its
    /// origin in headers, and waits for the ack: a dead letter must not be lost either.
    async fn dead_letter(&self, message: &ReceivedMessage, reason: &str) -> Result<(), String> {
        tracing::warn!(reason, topic = %message.topic, offset = message.offset, "dead-lettering message");
        let partition = message.partition.to_string();
        let offset = message.offset.to_string();
        let mut hs = OwnedHeaders::new();
        for (key, value) in &message.headers {
            hs = hs.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let hs = hs
            .insert(Header {
                key: headers::DLQ_REASON,
                value: Some(reason),
            })
            .insert(Header {
                key: headers::DLQ_ORIGINAL_TOPIC,
                value: Some(message.topic.as_str()),
            })
            .insert(Header {
                key: headers::DLQ_ORIGINAL_PARTITION,
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: headers::DLQ_ORIGINAL_OFFSET,
                value: Some(offset.as_str()),
            })
            .insert(Header {
                key: headers::DLQ_CONSUMER_GROUP,
                value: Some(self.settings.group_id.as_str()),
            });
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.settings.dead_letter_topic).headers(hs);
        if let Some(key) = &message.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &message.payload {
            record = record.payload(payload.as_slice());
        }
        self.dead_letters
            .send(record, Duration::from_secs(5))
            .await
            .map(|_| ())
            .map_err(|(e, _)| format!("dead-letter publish: {e}"))
    }
}

/// Retry `attempt` (1, 2, 3, ...) waits about 100 ms, 200 ms, 400 ms ..., with ±50 %
/// jitter so that consumers that failed together do not retry together, and never
/// more than `cap`.
fn backoff_with_jitter(attempt: u32, cap: Duration) -> Duration {
    let exponent = attempt.saturating_sub(1).min(10);
    let base = Duration::from_millis(100u64.saturating_mul(1 << exponent));
    base.mul_f64(0.5 + fastrand::f64()).min(cap)
}
