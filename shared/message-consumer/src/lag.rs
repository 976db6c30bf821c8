//! Consumer lag: how many messages of each assigned partition this member has not
//! consumed yet (`consumer_lag_messages{topic,partition}`).
//!
//! lag = the partition's high watermark (the offset the next produced message will
//! get) − our position (the offset of the next message we will consume). A lag that
//! keeps growing means the consumer falls behind; one that stays flat above zero while
//! the topic is idle means a message the loop cannot get past (a transient failure
//! retried for ever). Neither loses anything yet, but both delay every later message.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::consumer::{Consumer, StreamConsumer};
use service_runtime::Shutdown;
use telemetry::Metrics;
use telemetry::metrics::names;

/// How often the lag is sampled. Each sample asks the brokers for the watermarks of
/// the assigned partitions: a few small requests.
pub(crate) const LAG_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
const BROKER_TIMEOUT: Duration = Duration::from_secs(2);

/// Samples the lag until shutdown. The broker calls block, so they run on the
/// blocking pool, never on the loop's own task.
pub(crate) async fn sample_periodically(
    consumer: Arc<StreamConsumer>,
    metrics: Metrics,
    shutdown: Shutdown,
) {
    let mut reported: HashSet<(String, i32)> = HashSet::new();
    while !shutdown.is_triggered() {
        let c = Arc::clone(&consumer);
        if let Ok(lags) = tokio::task::spawn_blocking(move || lag_once(&c)).await {
            let now: HashSet<(String, i32)> =
                lags.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
            for (topic, partition, lag) in &lags {
                gauge(&metrics, topic, *partition).set(*lag as f64);
            }
            // A partition that moved to another member is its lag to report now.
            for (topic, partition) in reported.difference(&now) {
                gauge(&metrics, topic, *partition).set(0.0);
            }
            reported = now;
        }
        tokio::select! {
            () = shutdown.wait() => {},
            () = tokio::time::sleep(LAG_SAMPLE_INTERVAL) => {},
        }
    }
}

fn gauge(metrics: &Metrics, topic: &str, partition: i32) -> metrics::Gauge {
    metrics.gauge(
        names::CONSUMER_LAG_MESSAGES,
        &[("topic", topic), ("partition", &partition.to_string())],
    )
}

/// (topic, partition, lag) for every partition assigned to this member.
fn lag_once(consumer: &StreamConsumer) -> Vec<(String, i32, i64)> {
    let Ok(assignment) = consumer.assignment() else {
        return Vec::new();
    };
    if assignment.count() == 0 {
        return Vec::new();
    }
    let positions = consumer.position().ok();
    // Before the first message of a partition is consumed the position is unknown;
    // the group's committed offset is where consumption will start.
    let committed = consumer
        .committed_offsets(assignment.clone(), BROKER_TIMEOUT)
        .ok();
    let offset_in = |list: &Option<rdkafka::TopicPartitionList>, topic: &str, partition| {
        list.as_ref()
            .and_then(|l| l.find_partition(topic, partition))
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
    };
    let mut lags = Vec::new();
    for element in assignment.elements() {
        let (topic, partition) = (element.topic(), element.partition());
        let Ok((low, high)) = consumer.fetch_watermarks(topic, partition, BROKER_TIMEOUT) else {
            // The brokers do not answer: keep the last values rather than wait out a
            // timeout per partition (a shutdown waits for this sample).
            break;
        };
        // No position and no commit: a new group starts at the beginning
        // (`auto.offset.reset=earliest`).
        let next = offset_in(&positions, topic, partition)
            .or_else(|| offset_in(&committed, topic, partition))
            .unwrap_or(low);
        lags.push((topic.to_owned(), partition, (high - next).max(0)));
    }
    lags
}
