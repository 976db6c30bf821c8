//! The loop itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_config::headers;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use service_runtime::Shutdown;
use telemetry::Metrics;
use telemetry::propagation;
use tokio::sync::{Semaphore, SemaphorePermit};
use tracing::{Instrument, Span};

use crate::counters::LoopCounters;
use crate::hand_over::HandOver;
use crate::offsets::InFlight;
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
    /// `CONSUMER_MAX_RETRIES`: retries of a `Transient` failure before the message is
    /// dead-lettered ("retries exhausted"). `Unavailable` failures never count.
    pub max_retries: u32,
    /// When the offset is committed: after the effect (safe, the default) or before it
    /// (an unsafe teaching toggle, `CONSUMER_OFFSET_COMMIT=before-effect`).
    pub offset_commit: OffsetCommit,
    /// `CONSUMER_CONCURRENCY`: messages of different keys handled at once by `run`
    /// (1: one at a time, as a plain loop does). Same-key messages are always handled
    /// in order, one after the other.
    pub concurrency: usize,
    /// Messages received and not finished (in handlers or waiting behind their key)
    /// before `run` pauses the partitions.
    pub max_buffered: usize,
}

/// `CONSUMER_MAX_RETRIES`'s default: with the backoff doubling from 100 ms up to 30 s,
/// about 80 s of retries before a message that keeps failing is dead-lettered.
pub const DEFAULT_MAX_RETRIES: u32 = 10;

/// `CONSUMER_CONCURRENCY`'s default, chosen by measurement (docs/en/08-load-and-benchmark.md).
pub const DEFAULT_CONCURRENCY: usize = 16;

/// The fewest messages received-and-unfinished before the partitions pause. Each
/// pause and resume costs the partition a fetch round trip (about half a second here):
/// with a buffer of 8 per handler the bench saw the consumer paced by that cycle, at
/// exactly two buffers a second. A larger buffer makes the cycle rare; the messages it
/// holds are small, and a revoke or a stop does not wait for the ones not started.
pub const MIN_BUFFERED: usize = 1_000;

fn buffer_for(concurrency: usize) -> usize {
    (64 * concurrency).max(MIN_BUFFERED)
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
    /// One topic, its dead-letter topic `<topic>.dlq`, backoff capped at 30 s,
    /// [`DEFAULT_CONCURRENCY`] handlers at once.
    pub fn new(bootstrap_servers: &str, group_id: &str, topic: &str) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.to_owned(),
            group_id: group_id.to_owned(),
            topics: vec![topic.to_owned()],
            dead_letter_topic: kafka_config::dead_letter_topic(topic),
            max_backoff: Duration::from_secs(30),
            max_retries: DEFAULT_MAX_RETRIES,
            offset_commit: OffsetCommit::AfterEffect,
            concurrency: DEFAULT_CONCURRENCY,
            max_buffered: buffer_for(DEFAULT_CONCURRENCY),
        }
    }

    /// `concurrency` handlers at once, and up to [`MIN_BUFFERED`] (or 64 per handler)
    /// messages received before the partitions pause.
    #[must_use]
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self.max_buffered = buffer_for(self.concurrency);
        self
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
    /// Shared with the lag sampler, which reads positions and watermarks beside the
    /// loop, and with the poll thread of `run`.
    consumer: Arc<BaseConsumer<HandOver>>,
    /// The offsets received and not finished, per partition (`run` only).
    in_flight: Arc<InFlight>,
    worker: Worker<H>,
    metrics: Metrics,
}

/// What handles one message: the handler, the dead-letter producer, the counters.
/// Shared by the key tasks of `run`.
pub(crate) struct Worker<H> {
    dead_letters: FutureProducer,
    handler: H,
    pub(crate) settings: ConsumerSettings,
    counters: Arc<LoopCounters>,
}

impl<H> std::fmt::Debug for MessageConsumer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageConsumer")
            .field("settings", &self.worker.settings)
            .finish_non_exhaustive()
    }
}

impl<H: Handler> MessageConsumer<H> {
    /// Creates the consumer (see `kafka_config::at_least_once_consumer`) and subscribes.
    pub fn new(settings: ConsumerSettings, handler: H) -> Result<Self, KafkaError> {
        // The context sees every rebalance: before partitions are taken away, it waits
        // for their messages in flight and stores their offsets; then, with
        // `enable.auto.commit=true`, librdkafka itself commits the stored offsets of the
        // partitions it removes (`rd_kafka_assignment_serve_removals` in librdkafka's
        // rdkafka_assignment.c). Every stored offset belongs to a message whose effect is
        // committed: the new owner resumes right after it, and nothing is re-delivered
        // (tests/consumer_loop/rebalance.rs).
        let in_flight = Arc::new(InFlight::default());
        let context = HandOver {
            in_flight: Arc::clone(&in_flight),
        };
        let consumer: BaseConsumer<HandOver> =
            kafka_config::at_least_once_consumer(&settings.bootstrap_servers, &settings.group_id)
                .create_with_context(context)?;
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
            in_flight,
            worker: Worker {
                dead_letters,
                handler,
                counters: Arc::new(LoopCounters::new(metrics.clone(), &settings.topics)),
                settings,
            },
            metrics,
        })
    }

    /// Counts into `metrics` (the service's registry, served at `GET /metrics`). Call
    /// it before [`MessageConsumer::counters`]: it starts the counters afresh.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.worker.counters = Arc::new(LoopCounters::new(
            metrics.clone(),
            &self.worker.settings.topics,
        ));
        self.metrics = metrics.clone();
        self
    }

    pub fn handler(&self) -> &H {
        &self.worker.handler
    }

    /// The loop's counters (consumed, applied, duplicates by layer, dead-lettered,
    /// retried); they keep counting after `run` takes the consumer.
    pub fn counters(&self) -> Arc<LoopCounters> {
        Arc::clone(&self.worker.counters)
    }

    /// Waits up to `wait` for one message and processes it to the end (applied or
    /// dead-lettered, offset stored): the loop one message at a time, for tests that
    /// drive it step by step. `Ok(None)`: nothing arrived (or shutdown came first), or
    /// shutdown came while a transient failure was being retried (offset not stored:
    /// it comes again).
    pub async fn consume_once(
        &self,
        wait: Duration,
        shutdown: &Shutdown,
    ) -> Result<Option<Processed>, KafkaError> {
        let Some(message) = self.poll_one(wait, shutdown).await? else {
            return Ok(None);
        };
        if self.worker.settings.offset_commit == OffsetCommit::BeforeEffect {
            crate::parallel::commit_before_effect(&self.consumer, &message);
        }
        let Some(outcome) = self.worker.apply(&message, shutdown, None).await else {
            return Ok(None);
        };
        // Crash point C2: the effect is committed, the offset is not. A restart
        // re-delivers this message; the handler's inbox recognises it.
        service_runtime::crash_point("C2");
        // The offset is stored only now, after the effect (or the dead letter) is
        // durable. Committing first would lose the message on a crash (at-most-once).
        self.consumer
            .store_offset(&message.topic, message.partition, message.offset)?;
        Ok(Some(outcome))
    }

    /// Polls for one message on the blocking pool (librdkafka's poll blocks). Shutdown
    /// may cut short only the wait: a message once taken from the consumer is returned,
    /// never dropped (its position has moved past it).
    async fn poll_one(
        &self,
        wait: Duration,
        shutdown: &Shutdown,
    ) -> Result<Option<ReceivedMessage>, KafkaError> {
        let consumer = Arc::clone(&self.consumer);
        let shutdown = shutdown.clone();
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + wait;
            loop {
                let now = Instant::now();
                if shutdown.is_triggered() || now >= deadline {
                    return Ok(None);
                }
                let slice = (deadline - now).min(Duration::from_millis(100));
                match consumer.poll(slice) {
                    None => {}
                    Some(Err(e)) => return Err(e),
                    Some(Ok(m)) => return Ok(Some(ReceivedMessage::from_borrowed(&m))),
                }
            }
        })
        .await
        .unwrap_or(Ok(None))
    }

    /// Consumes until `shutdown`, in parallel by key ([`crate::parallel`]): a poll
    /// thread hands messages to per-key tasks, at most `concurrency` at once, and each
    /// partition stores its contiguous finished prefix. On shutdown it lets the
    /// messages in flight finish, commits, and drops the consumer, which leaves the
    /// group.
    pub async fn run(self, shutdown: Shutdown) {
        let Self {
            consumer,
            in_flight,
            worker,
            metrics,
        } = self;
        let group = worker.settings.group_id.clone();
        let lag = tokio::spawn(crate::lag::sample_periodically(
            Arc::clone(&consumer),
            metrics,
            shutdown.clone(),
        ));
        let abandoned = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let _abandon_on_drop = crate::parallel::AbandonOnDrop(Arc::clone(&abandoned));
        let poller = {
            let consumer = Arc::clone(&consumer);
            let worker = Arc::new(worker);
            let shutdown = shutdown.clone();
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                crate::parallel::poll_until_stopped(
                    consumer, in_flight, worker, shutdown, abandoned, runtime,
                );
            })
        };
        if let Err(error) = poller.await {
            tracing::error!(%error, group = %group, "the poll thread failed");
        }
        // The sampler stops on the same switch; once it is done this is the last
        // handle, and closing the consumer (it leaves the group, a blocking call)
        // happens here, off the async threads.
        let _ = lag.await;
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        tracing::info!(group = %group, "consumer stopped");
    }
}

impl<H: Handler> Worker<H> {
    /// Handles one message to the end inside its `process` span: applied, recognised as
    /// a copy, or dead-lettered; `None` if shutdown came during a retry. With
    /// `permits` (the semaphore and the permit of the first attempt), holds a permit
    /// only while the handler runs, not while it waits to retry.
    pub(crate) async fn apply(
        &self,
        message: &ReceivedMessage,
        shutdown: &Shutdown,
        permits: Option<(&Semaphore, SemaphorePermit<'_>)>,
    ) -> Option<Processed> {
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
        let outcome = self
            .process(message, shutdown, permits)
            .instrument(span.clone())
            .await?;
        outcome.record_on(&span);
        self.counters.finished(&outcome, started.elapsed());
        Some(outcome)
    }

    /// Applies the message: retries an `Unavailable` failure until success or shutdown,
    /// a `Transient` one up to `max_retries` times; dead-letters a permanent one, and
    /// a transient one that used up its retries.
    async fn process(
        &self,
        message: &ReceivedMessage,
        shutdown: &Shutdown,
        permits: Option<(&Semaphore, SemaphorePermit<'_>)>,
    ) -> Option<Processed> {
        let (semaphore, mut first) = match permits {
            Some((s, p)) => (Some(s), Some(p)),
            None => (None, None),
        };
        let mut attempt: u32 = 0;
        // Retries of `Transient` failures only: the cap's count.
        let mut counted: u32 = 0;
        loop {
            let permit = match (first.take(), semaphore) {
                (Some(p), _) => Some(p),
                (None, Some(s)) => Some(s.acquire().await.ok()?),
                (None, None) => None,
            };
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
                Err(HandleError::Permanent(reason)) => self.dead_letter(message, reason).await,
                Err(HandleError::Transient(error)) if counted >= self.settings.max_retries => {
                    let reason =
                        format!("retries exhausted ({counted} retries); last error: {error}");
                    self.dead_letter(message, reason).await
                }
                Err(error @ HandleError::Transient(_)) => {
                    counted += 1;
                    Err(error.to_string())
                }
                Err(unavailable @ HandleError::Unavailable(_)) => Err(unavailable.to_string()),
            };
            // The wait below holds back this key only: other keys may use the permit.
            drop(permit);
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
    ///
    /// A dead letter the broker can never take (the original plus the reason is too
    /// large, say) must not stall the key either: a truncated copy goes instead, with
    /// the origin headers, the reason cut to 1 KiB, the payload to 64 KiB and
    /// `dlq-truncated: true`, counted and logged. Never a silent skip. A DLQ publish
    /// that fails for a passing reason (the brokers down) is retried like an
    /// `Unavailable` failure.
    async fn dead_letter(
        &self,
        message: &ReceivedMessage,
        reason: String,
    ) -> Result<Processed, String> {
        tracing::warn!(reason, topic = %message.topic, offset = message.offset, "dead-lettering message");
        let done = |reason: String| Processed::DeadLettered {
            topic: message.topic.clone(),
            partition: message.partition,
            offset: message.offset,
            reason,
        };
        match self.publish_dead_letter(message, &reason, false).await {
            Ok(()) => Ok(done(reason)),
            Err(error) if !dead_letter_can_never_succeed(&error) => {
                Err(format!("dead-letter publish: {error}"))
            }
            Err(error) => {
                tracing::error!(%error, topic = %message.topic, offset = message.offset, "the dead letter is refused for good; dead-lettering a truncated copy");
                self.publish_dead_letter(message, &reason, true)
                    .await
                    .map_err(|e| format!("truncated dead-letter publish: {e}"))?;
                self.counters.dead_letter_truncated();
                Ok(done(reason))
            }
        }
    }

    async fn publish_dead_letter(
        &self,
        message: &ReceivedMessage,
        reason: &str,
        truncated: bool,
    ) -> Result<(), KafkaError> {
        let partition = message.partition.to_string();
        let offset = message.offset.to_string();
        let mut hs = OwnedHeaders::new();
        if !truncated {
            for (key, value) in &message.headers {
                hs = hs.insert(Header {
                    key,
                    value: value.as_deref(),
                });
            }
        } else {
            // The event's own headers stay (its id and type), not what came with them.
            for name in [headers::EVENT_ID, headers::EVENT_TYPE] {
                if let Some(value) = message.header(name) {
                    hs = hs.insert(Header {
                        key: name,
                        value: Some(truncate(value, 256)),
                    });
                }
            }
            hs = hs.insert(Header {
                key: headers::DLQ_TRUNCATED,
                value: Some("true"),
            });
        }
        let reason = if truncated {
            truncate(reason, 1024)
        } else {
            reason
        };
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
            let key = if truncated {
                &key[..key.len().min(256)]
            } else {
                key.as_slice()
            };
            record = record.key(key);
        }
        if let Some(payload) = &message.payload {
            let payload = if truncated {
                &payload[..payload.len().min(64 * 1024)]
            } else {
                payload.as_slice()
            };
            record = record.payload(payload);
        }
        self.dead_letters
            .send(record, Duration::from_secs(5))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}

/// The DLQ publish errors no retry can fix: the record is too large or invalid.
fn dead_letter_can_never_succeed(error: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(C::MessageSizeTooLarge | C::InvalidMessageSize | C::InvalidRecord)
    )
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Retry `attempt` (1, 2, 3, ...) waits about 100 ms, 200 ms, 400 ms ..., with ±50 %
/// jitter so that consumers that failed together do not retry together, and never
/// more than `cap`.
fn backoff_with_jitter(attempt: u32, cap: Duration) -> Duration {
    let exponent = attempt.saturating_sub(1).min(10);
    let base = Duration::from_millis(100u64.saturating_mul(1 << exponent));
    base.mul_f64(0.5 + fastrand::f64()).min(cap)
}

/// The consumer's knobs a service reads from its environment, the same in every
/// service: `CONSUMER_CONCURRENCY` (default [`DEFAULT_CONCURRENCY`], at least 1) and
/// `CONSUMER_MAX_RETRIES` (default [`DEFAULT_MAX_RETRIES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerTuning {
    pub concurrency: usize,
    pub max_retries: u32,
}

impl ConsumerTuning {
    pub fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, service_config::ConfigError> {
        Ok(Self {
            concurrency: service_config::parse_at_least(
                lookup,
                "CONSUMER_CONCURRENCY",
                DEFAULT_CONCURRENCY,
                1,
            )?,
            max_retries: service_config::parse_var(
                lookup,
                "CONSUMER_MAX_RETRIES",
                DEFAULT_MAX_RETRIES,
            )?,
        })
    }
}

impl ConsumerSettings {
    /// The settings with a service's [`ConsumerTuning`].
    #[must_use]
    pub fn tuned(self, tuning: ConsumerTuning) -> Self {
        let mut settings = self.with_concurrency(tuning.concurrency);
        settings.max_retries = tuning.max_retries;
        settings
    }
}
