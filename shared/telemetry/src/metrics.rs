//! Prometheus metrics: one registry per running service, rendered at `GET /metrics`
//! (docs/en/07-tracing-and-metrics.md lists what each series says about loss and
//! duplicates).
//!
//! The names below are a contract: dashboards and alert rules use them, so they are
//! defined once, here, and every component takes them from [`names`].
//!
//! A [`Metrics`] is a registry of its own (not the process-wide `metrics` recorder), so
//! two services built in one test process keep their numbers apart, and a component
//! built without one (a test's relay, say) counts into a registry nobody renders.

use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram, Label};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// The metric names (and their labels) services expose.
pub mod names {
    /// Counter `{method, route, status}`; `route` is the matched path (`/orders/{id}`).
    pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
    /// Histogram `{method, route, status}`, seconds.
    pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
    /// Gauge `{state}` (PENDING | SENDING | SENT | FAILED): outbox rows per state.
    pub const OUTBOX_ROWS: &str = "outbox_rows";
    /// Gauge: age of the oldest row not yet sent (PENDING, SENDING or FAILED); 0 when none.
    pub const OUTBOX_OLDEST_UNSENT_AGE_SECONDS: &str = "outbox_oldest_unsent_age_seconds";
    /// Counter: rows the broker acknowledged.
    pub const RELAY_PUBLISHED_TOTAL: &str = "relay_published_total";
    /// Histogram, seconds: from the send to the broker's acknowledgement.
    pub const RELAY_PUBLISH_DURATION_SECONDS: &str = "relay_publish_duration_seconds";
    /// Counter: failed sends put back for another attempt.
    pub const RELAY_PUBLISH_RETRIES_TOTAL: &str = "relay_publish_retries_total";
    /// Counter: rows given up (`FAILED`) after their last attempt.
    pub const RELAY_PUBLISH_FAILURES_TOTAL: &str = "relay_publish_failures_total";
    /// Gauge: messages in the relay producer's queue, not yet acknowledged.
    pub const PRODUCER_QUEUE_MESSAGES: &str = "producer_queue_messages";
    /// Counter `{topic}`: messages received, redeliveries included.
    pub const CONSUMER_MESSAGES_CONSUMED_TOTAL: &str = "consumer_messages_consumed_total";
    /// Counter `{topic}`: messages whose effect was applied (first deliveries).
    pub const CONSUMER_MESSAGES_APPLIED_TOTAL: &str = "consumer_messages_applied_total";
    /// Counter `{topic, layer}` (redis | inbox | business_key): copies not applied again.
    pub const CONSUMER_DUPLICATES_SUPPRESSED_TOTAL: &str = "consumer_duplicates_suppressed_total";
    /// Counter `{topic}`: messages sent to the dead-letter topic.
    pub const CONSUMER_DEAD_LETTERED_TOTAL: &str = "consumer_dead_lettered_total";
    /// Counter `{topic}`: retries after a transient failure.
    pub const CONSUMER_RETRIES_TOTAL: &str = "consumer_retries_total";
    /// Histogram `{topic}`, seconds: one message, received to done (retries included).
    pub const CONSUMER_PROCESSING_DURATION_SECONDS: &str = "consumer_processing_duration_seconds";
    /// Gauge `{topic, partition}`: messages on the partition not yet consumed by us.
    pub const CONSUMER_LAG_MESSAGES: &str = "consumer_lag_messages";
    /// Histogram, seconds (payment-service): order created → its payment applied.
    pub const ORDER_TO_PAYMENT_SECONDS: &str = "order_to_payment_seconds";
}

/// Buckets of the latency histograms, in seconds: a relay ack or a message is a few
/// milliseconds when healthy and seconds when a broker fails over.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Order → payment crosses two services, a relay pass and Kafka twice; a backlog makes
/// it minutes.
const END_TO_END_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// One service's metrics registry. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty registry with the histogram buckets and the help text of every metric.
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(names::ORDER_TO_PAYMENT_SECONDS.to_owned()),
                    END_TO_END_BUCKETS,
                )
            });
        // Only an empty bucket list is refused, and both lists above are constants.
        let recorder = builder.unwrap_or_default().build_recorder();
        let handle = recorder.handle();
        let metrics = Self {
            recorder: Arc::new(recorder),
            handle,
        };
        metrics.describe();
        metrics
    }

    /// A counter handle for `name` with these label values; the same series every time.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        let labels = owned(labels);
        metrics::with_local_recorder(self.recorder.as_ref(), || metrics::counter!(name, labels))
    }

    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        let labels = owned(labels);
        metrics::with_local_recorder(self.recorder.as_ref(), || metrics::gauge!(name, labels))
    }

    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        let labels = owned(labels);
        metrics::with_local_recorder(self.recorder.as_ref(), || metrics::histogram!(name, labels))
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds the samples recorded into histograms since the last call into their
    /// buckets. A scrape does it too; calling it periodically keeps memory bounded when
    /// nobody scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    fn describe(&self) {
        use names::*;
        metrics::with_local_recorder(self.recorder.as_ref(), || {
            metrics::describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests answered");
            metrics::describe_histogram!(
                HTTP_REQUEST_DURATION_SECONDS,
                metrics::Unit::Seconds,
                "HTTP request duration"
            );
            metrics::describe_gauge!(OUTBOX_ROWS, "Outbox rows per state");
            metrics::describe_gauge!(
                OUTBOX_OLDEST_UNSENT_AGE_SECONDS,
                metrics::Unit::Seconds,
                "Age of the oldest outbox row not yet sent (PENDING, SENDING, FAILED); 0 when none"
            );
            metrics::describe_counter!(
                RELAY_PUBLISHED_TOTAL,
                "Outbox rows the broker acknowledged"
            );
            metrics::describe_histogram!(
                RELAY_PUBLISH_DURATION_SECONDS,
                metrics::Unit::Seconds,
                "Relay send to broker acknowledgement"
            );
            metrics::describe_counter!(
                RELAY_PUBLISH_RETRIES_TOTAL,
                "Failed sends put back for another attempt"
            );
            metrics::describe_counter!(
                RELAY_PUBLISH_FAILURES_TOTAL,
                "Outbox rows given up as FAILED after their last attempt"
            );
            metrics::describe_gauge!(
                PRODUCER_QUEUE_MESSAGES,
                "Messages in the relay producer's queue, not yet acknowledged"
            );
            metrics::describe_counter!(
                CONSUMER_MESSAGES_CONSUMED_TOTAL,
                "Messages received from Kafka, redeliveries included"
            );
            metrics::describe_counter!(
                CONSUMER_MESSAGES_APPLIED_TOTAL,
                "Messages whose effect was applied"
            );
            metrics::describe_counter!(
                CONSUMER_DUPLICATES_SUPPRESSED_TOTAL,
                "Copies of already applied messages, by the layer that stopped them"
            );
            metrics::describe_counter!(
                CONSUMER_DEAD_LETTERED_TOTAL,
                "Messages rejected as permanent and published to the dead-letter topic"
            );
            metrics::describe_counter!(
                CONSUMER_RETRIES_TOTAL,
                "Retries of a message after a transient failure"
            );
            metrics::describe_histogram!(
                CONSUMER_PROCESSING_DURATION_SECONDS,
                metrics::Unit::Seconds,
                "One message from receipt to done, retries included"
            );
            metrics::describe_gauge!(
                CONSUMER_LAG_MESSAGES,
                "Messages on the partition after our position (high watermark - position)"
            );
            metrics::describe_histogram!(
                ORDER_TO_PAYMENT_SECONDS,
                metrics::Unit::Seconds,
                "Order created to its payment applied"
            );
        });
    }
}

fn owned(labels: &[(&'static str, &str)]) -> Vec<Label> {
    labels
        .iter()
        .map(|(key, value)| Label::new(*key, (*value).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_separate_and_render_the_contract_names() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.counter(names::CONSUMER_MESSAGES_CONSUMED_TOTAL, &[("topic", "t")])
            .increment(2);
        a.histogram(names::ORDER_TO_PAYMENT_SECONDS, &[])
            .record(0.2);
        let text = a.render();
        assert!(
            text.contains("consumer_messages_consumed_total{topic=\"t\"} 2"),
            "{text}"
        );
        // A histogram with buckets, not a summary: Prometheus can aggregate it.
        assert!(
            text.contains("order_to_payment_seconds_bucket{le=\"0.25\"} 1"),
            "{text}"
        );
        assert!(!b.render().contains("consumer_messages_consumed_total{"));
    }
}
