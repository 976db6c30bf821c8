//! The consumer side: at-least-once (study note, consume stage).

use rdkafka::ClientConfig;

/// A consumer that never commits what it has not processed.
///
/// librdkafka commits in the background from the *stored* offsets; we turn off the
/// automatic store, so an offset is stored only when the handler says the message's
/// effect is durable (the pattern of rust-rdkafka's `examples/at_least_once.rs`).
/// Committing before the effect loses the message on a crash; committing after it
/// can deliver it twice, which the idempotent handler absorbs.
pub fn at_least_once_consumer(bootstrap_servers: &str, group_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap_servers)
        .set("group.id", group_id)
        // Commit only offsets we stored ourselves, after the effect committed.
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000")
        // A new group starts from the beginning: no event written before it exists is skipped.
        .set("auto.offset.reset", "earliest")
        // Read only what the producer's transaction (if any) committed.
        .set("isolation.level", "read_committed")
        // Cooperative rebalancing moves only the partitions that must move.
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "10000")
        .set("max.poll.interval.ms", "300000");
    c
}
