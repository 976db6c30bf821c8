//! The counters of payment-service, per defence layer, in one place: served as JSON at
//! `GET /stats`. The consumer loop counts them (from what the handler returns), and
//! the same counts are series at `GET /metrics` (`consumer_*_total`).
//!
//! Read side by side they answer the note's question — duplicates delivered vs
//! duplicates applied: `consumed` = `applied` + the three `duplicates_*` +
//! `dead_lettered` (+ messages still in hand, and transient failures retried).

use std::sync::{Arc, OnceLock};

use message_consumer::LoopCounters;
use serde::Serialize;

/// A view of the consumer loop's counters, attached at start.
#[derive(Debug, Default)]
pub struct Stats {
    consumer: OnceLock<Arc<LoopCounters>>,
}

/// What `GET /stats` returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Messages received from Kafka, redeliveries included.
    pub consumed: u64,
    /// Payments written (each with its outcome event).
    pub applied: u64,
    /// Copies skipped because Redis knew the event id (no database work).
    pub duplicates_redis: u64,
    /// Copies skipped because the inbox had the event id.
    pub duplicates_inbox: u64,
    /// New event ids for an order already paid, stopped by `UNIQUE(order_id)`.
    pub duplicates_business_key: u64,
    /// Rejected as permanent and sent to `<topic>.dlq`.
    pub dead_lettered: u64,
    /// Retries after a transient failure.
    pub retried: u64,
}

impl Stats {
    /// Attaches the consumer loop's counters (once; later calls are ignored).
    pub fn attach_consumer(&self, counters: Arc<LoopCounters>) {
        let _already = self.consumer.set(counters);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let c = self.consumer.get().map(|c| c.counts()).unwrap_or_default();
        StatsSnapshot {
            consumed: c.consumed,
            applied: c.applied,
            duplicates_redis: c.duplicates_redis,
            duplicates_inbox: c.duplicates_inbox,
            duplicates_business_key: c.duplicates_business_key,
            dead_lettered: c.dead_lettered,
            retried: c.retried,
        }
    }
}
