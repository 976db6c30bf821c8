//! The messaging spans, named and attributed after the OpenTelemetry semantic
//! conventions for messaging (`send <topic>` PRODUCER, `process <topic>` CONSUMER), so
//! Jaeger and `trace-view` show the Kafka hop the same way for every producer and
//! consumer of this project.

use tracing::Span;
use tracing::field::Empty;

/// The PRODUCER span of one send, from `send()` to the broker's answer. Put it under
/// the message's creation context ([`crate::propagation::set_parent`]) before it is
/// entered, and inject it into the message's headers
/// ([`crate::propagation::inject_kafka`]): the consumer's span becomes its child.
pub fn producer(topic: &str, message_id: &str, key: &str) -> Span {
    tracing::info_span!(
        "send",
        otel.name = format!("send {topic}"),
        otel.kind = "producer",
        otel.status_code = Empty,
        "messaging.system" = "kafka",
        "messaging.operation.type" = "send",
        "messaging.destination.name" = topic,
        "messaging.message.id" = message_id,
        "messaging.kafka.message.key" = key,
        "messaging.destination.partition.id" = Empty,
        "messaging.kafka.offset" = Empty,
        "error.type" = Empty,
    )
}

/// Records where the broker put the message.
pub fn record_ack(span: &Span, partition: i32, offset: i64) {
    span.record("messaging.destination.partition.id", partition.to_string());
    span.record("messaging.kafka.offset", offset);
}

/// Marks a span failed, with a short reason.
pub fn record_error(span: &Span, error: &str) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", error);
}

/// The CONSUMER span of one received message, from receipt to done (applied,
/// suppressed as a duplicate, or dead-lettered). Its parent is the producer's span,
/// read from the message's headers.
pub fn consumer(topic: &str, partition: i32, offset: i64, group: &str) -> Span {
    tracing::info_span!(
        "process",
        otel.name = format!("process {topic}"),
        otel.kind = "consumer",
        otel.status_code = Empty,
        "messaging.system" = "kafka",
        "messaging.operation.type" = "process",
        "messaging.destination.name" = topic,
        "messaging.destination.partition.id" = partition.to_string(),
        "messaging.kafka.offset" = offset,
        "messaging.consumer.group.name" = group,
        "messaging.message.id" = Empty,
        "error.type" = Empty,
        // What became of the message: applied | duplicate | dead_lettered.
        outcome = Empty,
        // Set on a copy that was not applied again, with the layer that stopped it
        // (redis | inbox | business_key).
        duplicate = Empty,
        suppressed_by = Empty,
    )
}
