//! A received message, and what a handler says about it.

use std::future::Future;

use kafka_config::headers;
use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};
use uuid::Uuid;

/// An owned copy of a Kafka message, so a handler may hold it across awaits.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl ReceivedMessage {
    pub fn from_borrowed(m: &BorrowedMessage<'_>) -> Self {
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

    /// The first header with this name, as UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The `event-id` header. Missing or unparsable is a permanent error: without an id
    /// the message cannot be deduplicated, so it must not be applied.
    pub fn event_id(&self) -> Result<Uuid, HandleError> {
        let raw = self
            .header(headers::EVENT_ID)
            .ok_or_else(|| HandleError::Permanent("missing event-id header".to_owned()))?;
        Uuid::parse_str(raw).map_err(|e| HandleError::Permanent(format!("event-id {raw:?}: {e}")))
    }

    pub fn event_type(&self) -> Option<&str> {
        self.header(headers::EVENT_TYPE)
    }
}

/// The one place where a failure is classified: retry it, or dead-letter it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandleError {
    /// Will likely succeed later (database down, timeout, provider unavailable):
    /// retried with backoff, offset not stored.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed (malformed payload, unknown schema version, business rule
    /// violated): dead-lettered with this reason.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// What a service does with one message. Must be idempotent: the loop is at-least-once.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        message: &ReceivedMessage,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;
}
