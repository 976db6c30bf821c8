//! Kafka client configuration for the produce and consume stages of the study note,
//! and the few admin operations the services and tests need.
//!
//! Every setting that decides whether a message can be lost or duplicated is set here
//! explicitly, with the reason beside it, instead of being left to librdkafka's defaults.
//! The services take these configs; they never assemble Kafka settings themselves.

mod admin;
mod consumer;
mod producer;
mod record;
mod snapshot;

pub use admin::{
    ClusterView, PartitionView, TopicDurability, TopicView, create_topic, describe_cluster,
    describe_topic, topic_durability, topic_retention,
};
pub use consumer::at_least_once_consumer;
pub use producer::{Acks, ProducerSettings};
pub use record::Record;
pub use snapshot::read_topic_to_end;

/// Errors of the admin helpers.
#[derive(Debug, thiserror::Error)]
pub enum KafkaAdminError {
    #[error("kafka: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("kafka: creating topic {topic}: {reason}")]
    CreateTopic { topic: String, reason: String },
    #[error("kafka: reading the configuration of topic {topic}: {reason}")]
    DescribeConfigs { topic: String, reason: String },
    #[error("kafka: topic {0} is not in the cluster metadata")]
    UnknownTopic(String),
    #[error("kafka: the metadata call did not finish: {0}")]
    Join(String),
}

/// Header names every event carries on Kafka.
pub mod headers {
    /// The event's unique id (the outbox row id). Consumers deduplicate on it.
    pub const EVENT_ID: &str = "event-id";
    /// What happened (`OrderCreated`, `PaymentSucceeded`, ...).
    pub const EVENT_TYPE: &str = "event-type";
    /// Set on dead-lettered messages: why the message was rejected.
    pub const DLQ_REASON: &str = "dlq-reason";
    /// Set on dead-lettered messages: where the message came from.
    pub const DLQ_ORIGINAL_TOPIC: &str = "dlq-original-topic";
    pub const DLQ_ORIGINAL_PARTITION: &str = "dlq-original-partition";
    pub const DLQ_ORIGINAL_OFFSET: &str = "dlq-original-offset";
    pub const DLQ_CONSUMER_GROUP: &str = "dlq-consumer-group";
    /// `true` on a dead letter cut down because the broker refused the whole one (too
    /// large): reason, key and payload truncated, the original's extra headers dropped.
    pub const DLQ_TRUNCATED: &str = "dlq-truncated";

    use rdkafka::message::{Header, OwnedHeaders, ToBytes};

    /// The headers of an event as every producer of the project sends it: its id (what
    /// consumers deduplicate on) and its type first, then `extra` (name, value) pairs
    /// (a schema version, say). The trace context is added by
    /// `telemetry::propagation::inject_kafka`.
    pub fn for_event<'a>(
        event_id: &str,
        event_type: &str,
        extra: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> OwnedHeaders {
        from_pairs(
            [(EVENT_ID, Some(event_id)), (EVENT_TYPE, Some(event_type))]
                .into_iter()
                .chain(extra.into_iter().map(|(name, value)| (name, Some(value)))),
        )
    }

    /// Headers from (name, value) pairs, as given: a replayed dead letter's, a test's
    /// hand-made message.
    pub fn from_pairs<'a, V: ToBytes + ?Sized + 'a>(
        pairs: impl IntoIterator<Item = (&'a str, Option<&'a V>)>,
    ) -> OwnedHeaders {
        pairs
            .into_iter()
            .fold(OwnedHeaders::new(), |headers, (key, value)| {
                headers.insert(Header { key, value })
            })
    }
}

/// The dead-letter topic of `topic`: `<topic>.dlq`.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}
