//! A received message, and what a handler says about it.

use std::future::Future;

use kafka_config::headers;
use uuid::Uuid;

/// An owned copy of a Kafka message, so a handler may hold it across awaits.
pub type ReceivedMessage = kafka_config::Record;

/// The event headers every message of this project carries (see `kafka_config::headers`).
pub trait EventHeaders {
    /// The `event-id` header. Missing or unparsable is a permanent error: without an id
    /// the message cannot be deduplicated, so it must not be applied.
    fn event_id(&self) -> Result<Uuid, HandleError>;
    /// The `event-type` header.
    fn event_type(&self) -> Option<&str>;
}

impl EventHeaders for ReceivedMessage {
    fn event_id(&self) -> Result<Uuid, HandleError> {
        let raw = self
            .header(headers::EVENT_ID)
            .ok_or_else(|| HandleError::Permanent("missing event-id header".to_owned()))?;
        Uuid::parse_str(raw).map_err(|e| HandleError::Permanent(format!("event-id {raw:?}: {e}")))
    }

    fn event_type(&self) -> Option<&str> {
        self.header(headers::EVENT_TYPE)
    }
}

/// The one place where a failure is classified: retry it, or dead-letter it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandleError {
    /// A dependency cannot be reached (database connection refused or lost, pool
    /// timeout, I/O, the payment provider down): retried with backoff for as long as it
    /// lasts, offset not stored, and **never** counted toward the retry cap. A database
    /// cut or a Postgres restart is waited out, never turned into dead letters.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Failed, and might succeed on another try (a deadlock, a serialization failure,
    /// an unexpected error): retried with backoff, offset not stored, at most
    /// `CONSUMER_MAX_RETRIES` times; then dead-lettered with the reason "retries
    /// exhausted" and this error. A message that fails this way forever holds only its
    /// own key, and only for so long.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed (malformed payload, unknown schema version, business rule
    /// violated): dead-lettered with this reason.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// What a handler did with a message it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The effect was applied now: this was the first delivery.
    Applied,
    /// A copy of a message whose effect was already applied: nothing changed. Says
    /// which defence recognised it; the loop counts it
    /// (`consumer_duplicates_suppressed_total{layer}`) and marks the message's trace
    /// span `duplicate=true, suppressed_by=<layer>`.
    Duplicate(DedupLayer),
}

/// The defences against applying a message twice, cheapest first
/// (docs/en/06-idempotency.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupLayer {
    /// The Redis fast path knew the event id: skipped before the database.
    Redis,
    /// The inbox row for the event id already existed, in the effect's transaction.
    Inbox,
    /// A new event id, but the business key (one payment per order, one outcome per
    /// order) was already taken.
    BusinessKey,
}

impl DedupLayer {
    /// The label value in metrics and traces.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Inbox => "inbox",
            Self::BusinessKey => "business_key",
        }
    }
}

/// What a service does with one message. Must be idempotent: the loop is at-least-once.
///
/// The loop runs `handle` inside the message's `process <topic>` span, the child of
/// the producer's span: whatever the handler writes to its outbox there carries the
/// trace on (docs/en/07-tracing-and-metrics.md).
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        message: &ReceivedMessage,
    ) -> impl Future<Output = Result<Handled, HandleError>> + Send;
}
