//! The counters of payment-service, per defence layer, in one place: served as JSON at
//! `GET /stats`. The consumer loop counts them (from what the handler returns), and
//! the same counts are series at `GET /metrics` (`consumer_*_total`).
//!
//! Read side by side they answer the note's question — duplicates delivered vs
//! duplicates applied: `consumed` = `applied` + the three `duplicates_*` +
//! `dead_lettered` (+ messages still in hand, and transient failures retried).

use std::sync::{Arc, OnceLock};

use message_consumer::{LoopCounters, LoopCounts};

/// A view of the consumer loop's counters, attached at start.
#[derive(Debug, Default)]
pub struct Stats {
    consumer: OnceLock<Arc<LoopCounters>>,
}

/// What `GET /stats` returns: the consumer loop's counts, field for field
/// (`message_consumer::LoopCounts` documents each).
pub type StatsSnapshot = LoopCounts;

impl Stats {
    /// Attaches the consumer loop's counters (once; later calls are ignored).
    pub fn attach_consumer(&self, counters: Arc<LoopCounters>) {
        let _already = self.consumer.set(counters);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        self.consumer.get().map(|c| c.counts()).unwrap_or_default()
    }
}
