//! What the loop counts, per consumer: messages taken in, applied, suppressed as
//! duplicates (by layer), dead-lettered and retried.
//!
//! Counted twice over, from the same call sites: into atomics that a service reads in
//! process (payment-service's `GET /stats`, the tests), and into the service's
//! Prometheus registry with a `topic` label (`GET /metrics`). Read side by side they
//! answer the study note's question, duplicates delivered vs duplicates applied:
//! `consumed = applied + duplicates + dead_lettered` (+ the message in hand).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Counter, Histogram};
use serde::{Deserialize, Serialize};
use telemetry::Metrics;
use telemetry::metrics::names;

use crate::{DedupLayer, Processed};

/// Monotonic counters, updated by the loop, readable from any thread.
#[derive(Debug, Default)]
pub struct LoopCounters {
    consumed: AtomicU64,
    applied: AtomicU64,
    duplicates_redis: AtomicU64,
    duplicates_inbox: AtomicU64,
    duplicates_business_key: AtomicU64,
    dead_lettered: AtomicU64,
    dead_letters_truncated: AtomicU64,
    retried: AtomicU64,
    registry: Metrics,
    /// The Prometheus series of each topic, registered on first use.
    series: Mutex<HashMap<String, TopicSeries>>,
}

/// The counters at one moment (payment-service serves them as JSON at `GET /stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoopCounts {
    /// Messages received from Kafka (redeliveries included).
    pub consumed: u64,
    /// Messages whose effect the handler applied (first deliveries).
    pub applied: u64,
    /// Copies the Redis fast path recognised (no database work).
    pub duplicates_redis: u64,
    /// Copies the inbox recognised, in the effect's transaction.
    pub duplicates_inbox: u64,
    /// New event ids for a business key already used (`UNIQUE(order_id)`, the order's
    /// state machine).
    pub duplicates_business_key: u64,
    /// Messages the handler rejected as permanent, published to `<topic>.dlq`.
    pub dead_lettered: u64,
    /// Of those, dead letters the broker refused whole (too large) and that went as a
    /// truncated copy (`dlq-truncated: true`).
    pub dead_letters_truncated: u64,
    /// Retries of a message after a transient failure (one per backoff wait).
    pub retried: u64,
}

#[derive(Clone)]
struct TopicSeries {
    consumed: Counter,
    applied: Counter,
    duplicates: [Counter; 3],
    dead_lettered: Counter,
    retries: Counter,
    processing: Histogram,
}

impl std::fmt::Debug for TopicSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicSeries").finish_non_exhaustive()
    }
}

const LAYERS: [DedupLayer; 3] = [
    DedupLayer::Redis,
    DedupLayer::Inbox,
    DedupLayer::BusinessKey,
];

impl TopicSeries {
    fn new(registry: &Metrics, topic: &str) -> Self {
        let by_topic = [("topic", topic)];
        Self {
            consumed: registry.counter(names::CONSUMER_MESSAGES_CONSUMED_TOTAL, &by_topic),
            applied: registry.counter(names::CONSUMER_MESSAGES_APPLIED_TOTAL, &by_topic),
            // Registered up front, so a dashboard sees every layer at 0 from the start
            // rather than a series that appears with the first duplicate.
            duplicates: LAYERS.map(|layer| {
                registry.counter(
                    names::CONSUMER_DUPLICATES_SUPPRESSED_TOTAL,
                    &[("topic", topic), ("layer", layer.as_str())],
                )
            }),
            dead_lettered: registry.counter(names::CONSUMER_DEAD_LETTERED_TOTAL, &by_topic),
            retries: registry.counter(names::CONSUMER_RETRIES_TOTAL, &by_topic),
            processing: registry.histogram(names::CONSUMER_PROCESSING_DURATION_SECONDS, &by_topic),
        }
    }
}

impl LoopCounters {
    /// Counters that also feed `registry` (the service's `GET /metrics`), with the
    /// series of `topics` registered now.
    pub fn new(registry: Metrics, topics: &[String]) -> Self {
        let series = topics
            .iter()
            .map(|topic| (topic.clone(), TopicSeries::new(&registry, topic)))
            .collect();
        Self {
            consumed: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            duplicates_redis: AtomicU64::new(0),
            duplicates_inbox: AtomicU64::new(0),
            duplicates_business_key: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            dead_letters_truncated: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            registry,
            series: Mutex::new(series),
        }
    }

    pub fn counts(&self) -> LoopCounts {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        LoopCounts {
            consumed: load(&self.consumed),
            applied: load(&self.applied),
            duplicates_redis: load(&self.duplicates_redis),
            duplicates_inbox: load(&self.duplicates_inbox),
            duplicates_business_key: load(&self.duplicates_business_key),
            dead_lettered: load(&self.dead_lettered),
            dead_letters_truncated: load(&self.dead_letters_truncated),
            retried: load(&self.retried),
        }
    }

    pub(crate) fn consumed(&self, topic: &str) {
        self.consumed.fetch_add(1, Ordering::Relaxed);
        self.series(topic).consumed.increment(1);
    }

    pub(crate) fn dead_letter_truncated(&self) {
        self.dead_letters_truncated.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self, topic: &str) {
        self.retried.fetch_add(1, Ordering::Relaxed);
        self.series(topic).retries.increment(1);
    }

    /// A message is done: applied, suppressed or dead-lettered, after `took`.
    pub(crate) fn finished(&self, outcome: &Processed, took: Duration) {
        let series = self.series(outcome.topic());
        series.processing.record(took);
        match outcome {
            Processed::Applied { .. } => {
                self.applied.fetch_add(1, Ordering::Relaxed);
                series.applied.increment(1);
            }
            Processed::Duplicate { layer, .. } => {
                let counter = match layer {
                    DedupLayer::Redis => &self.duplicates_redis,
                    DedupLayer::Inbox => &self.duplicates_inbox,
                    DedupLayer::BusinessKey => &self.duplicates_business_key,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                // Same order as LAYERS.
                let index = match layer {
                    DedupLayer::Redis => 0,
                    DedupLayer::Inbox => 1,
                    DedupLayer::BusinessKey => 2,
                };
                series.duplicates[index].increment(1);
            }
            Processed::DeadLettered { .. } => {
                self.dead_lettered.fetch_add(1, Ordering::Relaxed);
                series.dead_lettered.increment(1);
            }
        }
    }

    fn series(&self, topic: &str) -> TopicSeries {
        let mut all = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.entry(topic.to_owned())
            .or_insert_with(|| TopicSeries::new(&self.registry, topic))
            .clone()
    }
}
