//! Reading a whole topic, once, up to its current end: what the reconciliation checker
//! and the tests use to count what Kafka really holds (copies included).

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::{KafkaAdminError, Record};

/// Reads every partition of `topic` from its first to its last offset as of now.
/// No consumer group offsets are read or written.
pub async fn read_topic_to_end(
    bootstrap_servers: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<Record>, KafkaAdminError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .set("group.id", "topic-snapshot")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || read_blocking(&consumer, &topic, timeout))
        .await
        .map_err(|e| KafkaAdminError::Join(e.to_string()))?
}

fn read_blocking(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<Record>, KafkaAdminError> {
    let deadline = Instant::now() + timeout;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if partitions.is_empty() {
        return Err(KafkaAdminError::UnknownTopic(topic.to_owned()));
    }
    // The end of each partition now: read up to it, not beyond.
    let mut ends = Vec::new();
    let mut assignment = TopicPartitionList::new();
    for p in &partitions {
        let (low, high) = watermarks(consumer, topic, *p, deadline)?;
        if high > low {
            assignment.add_partition_offset(topic, *p, Offset::Offset(low))?;
            ends.push((*p, high));
        }
    }
    consumer.assign(&assignment)?;
    let mut records = Vec::new();
    let mut remaining: usize = ends.iter().filter(|(_, h)| *h > 0).count();
    let mut done = vec![false; ends.len()];
    while remaining > 0 {
        if Instant::now() >= deadline {
            return Err(KafkaAdminError::Join(format!(
                "reading {topic} did not reach its end in {timeout:?}"
            )));
        }
        let Some(result) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        // Errors here are the client's reports (a broker connection dropped, say); it
        // reconnects by itself, and the deadline bounds the wait.
        let Ok(m) = result else { continue };
        records.push(Record::from_borrowed(&m));
        if let Some(i) = ends
            .iter()
            .position(|(p, high)| *p == m.partition() && m.offset() + 1 >= *high)
        {
            if !done[i] {
                done[i] = true;
                remaining -= 1;
            }
        }
    }
    Ok(records)
}

/// The partition's first and next offsets, retried until `deadline`: just after a
/// leader change the new leader answers `OffsetNotAvailable` until its high watermark
/// has caught up.
fn watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    deadline: Instant,
) -> Result<(i64, i64), KafkaAdminError> {
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
            Ok(marks) => return Ok(marks),
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}
