//! Handling one message to the end: apply it through the [`Handler`], retry what can
//! succeed later, dead-letter what never can, and say what happened ([`Processed`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_config::headers;
use lifecycle::Shutdown;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use telemetry::propagation;
use tokio::sync::{Semaphore, SemaphorePermit};
use tracing::{Instrument, Span};

use crate::counters::LoopCounters;
use crate::settings::ConsumerSettings;
use crate::{DedupLayer, HandleError, Handled, Handler, ReceivedMessage};

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

/// What handles one message: the handler, the dead-letter producer, the counters.
/// Shared by the key tasks of `run`.
pub(crate) struct Worker<H> {
    pub(crate) dead_letters: FutureProducer,
    pub(crate) handler: H,
    pub(crate) settings: ConsumerSettings,
    pub(crate) counters: Arc<LoopCounters>,
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
                    // Jittered: the members that failed together (a database went away
                    // under all of them) do not all retry in the same instant.
                    let delay = lifecycle::with_jitter(lifecycle::backoff(
                        attempt,
                        self.settings.max_backoff,
                    ));
                    tracing::warn!(
                        %error, attempt, delay_ms = delay.as_millis() as u64,
                        topic = %message.topic, partition = message.partition, offset = message.offset,
                        "handling failed; retrying the same message"
                    );
                    if !shutdown.sleep(delay).await {
                        return None;
                    }
                    self.counters.retried(&message.topic);
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
