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

use lifecycle::Shutdown;
use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, Consumer};
use telemetry::Metrics;
use telemetry::metrics::names;

use crate::hand_over::HandOver;

/// How often the lag is sampled. Each sample asks the brokers for the watermarks of
/// the assigned partitions: a few small requests.
pub(crate) const LAG_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
const BROKER_TIMEOUT: Duration = Duration::from_secs(2);

/// Samples the lag until shutdown. The broker calls block, so they run on the
/// blocking pool, never on the loop's own task.
pub(crate) async fn sample_periodically(
    consumer: Arc<BaseConsumer<HandOver>>,
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
        if !shutdown.sleep(LAG_SAMPLE_INTERVAL).await {
            break;
        }
    }
}

fn gauge(metrics: &Metrics, topic: &str, partition: i32) -> metrics::Gauge {
    metrics.gauge(
        names::CONSUMER_LAG_MESSAGES,
        &[("topic", topic), ("partition", &partition.to_string())],
    )
}

/// (topic, partition, lag) for every assigned partition this member has read from.
///
/// Only the position (local) and the watermarks (a request to the partition leader)
/// are asked for. The group's committed offsets are not: that call waits on the
/// consumer's own group machinery and stalled the loop beside it. A partition with no
/// message consumed since it was assigned has no position yet and is not reported
/// until its first message (an idle partition: nothing waits there).
fn lag_once(consumer: &BaseConsumer<HandOver>) -> Vec<(String, i32, i64)> {
    let Ok(positions) = consumer.position() else {
        return Vec::new();
    };
    let mut lags = Vec::new();
    for element in positions.elements() {
        let Offset::Offset(next) = element.offset() else {
            continue;
        };
        let (topic, partition) = (element.topic(), element.partition());
        let Ok((_low, high)) = consumer.fetch_watermarks(topic, partition, BROKER_TIMEOUT) else {
            // The brokers do not answer: keep the last values rather than wait out a
            // timeout per partition (a shutdown waits for this sample).
            break;
        };
        lags.push((topic.to_owned(), partition, (high - next).max(0)));
    }
    lags
}
