//! The counters of payment-service, per defence layer, in one place: served as JSON at
//! `GET /stats` now, exportable as metrics later without touching the code that counts.
//!
//! Read side by side they answer the note's question — duplicates delivered vs
//! duplicates applied: `consumed` = `applied` + the three `duplicates_*` +
//! `dead_lettered` (+ messages still in hand, and transient failures retried).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use message_consumer::LoopCounters;
use serde::Serialize;

/// Counted by the handler (`payments.rs`); the loop's counters are attached at start.
#[derive(Debug, Default)]
pub struct Stats {
    applied: AtomicU64,
    duplicates_redis: AtomicU64,
    duplicates_inbox: AtomicU64,
    duplicates_business_key: AtomicU64,
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
        let loop_counts = self.consumer.get().map(|c| c.counts()).unwrap_or_default();
        StatsSnapshot {
            consumed: loop_counts.consumed,
            applied: self.applied.load(Ordering::Relaxed),
            duplicates_redis: self.duplicates_redis.load(Ordering::Relaxed),
            duplicates_inbox: self.duplicates_inbox.load(Ordering::Relaxed),
            duplicates_business_key: self.duplicates_business_key.load(Ordering::Relaxed),
            dead_lettered: loop_counts.dead_lettered,
            retried: loop_counts.retried,
        }
    }

    pub(crate) fn applied(&self) {
        self.applied.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn duplicate_redis(&self) {
        self.duplicates_redis.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn duplicate_inbox(&self) {
        self.duplicates_inbox.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn duplicate_business_key(&self) {
        self.duplicates_business_key.fetch_add(1, Ordering::Relaxed);
    }
}
