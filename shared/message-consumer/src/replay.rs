//! Dead-letter replay: once the cause of a rejection is fixed (a handler deployed that
//! accepts the message, a missing reference created), the letter goes back to the topic
//! it came from, as it was, and the consumer applies it (docs/en/04-consume.md,
//! "Replaying dead letters"; the `dlq-replay` binary).
//!
//! Replaying is safe to repeat: the copy keeps its `event-id`, so if the original was
//! applied after all, or a letter is replayed twice, the consumer's inbox suppresses it.

use std::time::Duration;

use kafka_config::{KafkaAdminError, Record, headers};
use rdkafka::producer::{FutureProducer, FutureRecord};
use uuid::Uuid;

/// Why a letter could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("reading the dead-letter topic: {0}")]
    Read(#[from] KafkaAdminError),
    #[error("dead letter at offset {0} has no dlq-original-topic header: where would it go?")]
    NoOriginalTopic(i64),
    #[error("republishing to {topic}: {reason}")]
    Publish { topic: String, reason: String },
}

/// Every letter on `dead_letter_topic` as of now, optionally only those whose
/// `event-id` header is `event_id`. Reads without a consumer group: listing commits
/// nothing, and a letter stays on the topic after it is replayed.
pub async fn read_letters(
    bootstrap_servers: &str,
    dead_letter_topic: &str,
    event_id: Option<Uuid>,
) -> Result<Vec<Record>, ReplayError> {
    let letters = kafka_config::read_topic_to_end(
        bootstrap_servers,
        dead_letter_topic,
        Duration::from_secs(60),
    )
    .await?;
    let wanted = event_id.map(|id| id.to_string());
    Ok(letters
        .into_iter()
        .filter(|letter| {
            wanted
                .as_deref()
                .is_none_or(|id| letter.header(headers::EVENT_ID) == Some(id))
        })
        .collect())
}

/// Where a replayed letter landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The headers a letter had before it was dead-lettered: everything but `dlq-*`.
pub fn original_headers(letter: &Record) -> Vec<(String, Option<Vec<u8>>)> {
    letter
        .headers
        .iter()
        .filter(|(key, _)| !key.starts_with("dlq-"))
        .cloned()
        .collect()
}

/// Republishes `letter` to its original topic with its original key (so it lands on
/// the same partition as its siblings, keeping per-key order), payload and headers, and
/// waits for the ack. `producer` should be `ProducerSettings::reliable` (acks=all,
/// idempotent): a replay must not be lost either.
pub async fn replay(producer: &FutureProducer, letter: &Record) -> Result<Replayed, ReplayError> {
    let topic = letter
        .header(headers::DLQ_ORIGINAL_TOPIC)
        .ok_or(ReplayError::NoOriginalTopic(letter.offset))?
        .to_owned();
    let kept = original_headers(letter);
    let hs = headers::from_pairs(kept.iter().map(|(k, v)| (k.as_str(), v.as_deref())));
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic).headers(hs);
    if let Some(key) = &letter.key {
        record = record.key(key.as_slice());
    }
    if let Some(payload) = &letter.payload {
        record = record.payload(payload.as_slice());
    }
    let delivery = producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| ReplayError::Publish {
            topic: topic.clone(),
            reason: e.to_string(),
        })?;
    Ok(Replayed {
        topic,
        partition: delivery.partition,
        offset: delivery.offset,
    })
}

/// One line about a letter: where it sits, its event, why it was rejected, from where.
pub fn describe(letter: &Record) -> String {
    let h = |name| letter.header(name).unwrap_or("-");
    format!(
        "{}[{}]@{} event-id={} event-type={} reason={:?} from {}[{}]@{} (group {})",
        letter.topic,
        letter.partition,
        letter.offset,
        h(headers::EVENT_ID),
        h(headers::EVENT_TYPE),
        h(headers::DLQ_REASON),
        h(headers::DLQ_ORIGINAL_TOPIC),
        h(headers::DLQ_ORIGINAL_PARTITION),
        h(headers::DLQ_ORIGINAL_OFFSET),
        h(headers::DLQ_CONSUMER_GROUP),
    )
}
