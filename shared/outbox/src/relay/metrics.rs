//! What the relay counts (names in `telemetry::metrics::names`).

use metrics::{Counter, Gauge, Histogram};
use telemetry::Metrics;
use telemetry::metrics::names;

/// The relay's series, registered once.
#[derive(Clone)]
pub(crate) struct RelayMetrics {
    /// Rows the broker acknowledged, counted at the ack (before mark-sent: a crash at
    /// R2 or R3 counts a row that will be sent, and counted, again).
    pub published: Counter,
    /// Send → acknowledgement, per row.
    pub publish_duration: Histogram,
    /// Failed sends put back to `PENDING`.
    pub retries: Counter,
    /// Rows given up as `FAILED`.
    pub failures: Counter,
    /// The producer's queue: sent, not yet acknowledged. Growing means the broker is
    /// slower than the relay (or gone).
    pub producer_queue: Gauge,
}

impl RelayMetrics {
    pub(crate) fn new(metrics: &Metrics) -> Self {
        Self {
            published: metrics.counter(names::RELAY_PUBLISHED_TOTAL, &[]),
            publish_duration: metrics.histogram(names::RELAY_PUBLISH_DURATION_SECONDS, &[]),
            retries: metrics.counter(names::RELAY_PUBLISH_RETRIES_TOTAL, &[]),
            failures: metrics.counter(names::RELAY_PUBLISH_FAILURES_TOTAL, &[]),
            producer_queue: metrics.gauge(names::PRODUCER_QUEUE_MESSAGES, &[]),
        }
    }
}
