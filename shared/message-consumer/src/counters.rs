//! What the loop counts, per consumer: how many messages it took in, dead-lettered and
//! retried. A service puts these beside its own counts (payment-service's `/stats`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters, updated by the loop, readable from any thread.
#[derive(Debug, Default)]
pub struct LoopCounters {
    consumed: AtomicU64,
    dead_lettered: AtomicU64,
    retried: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopCounts {
    /// Messages received from Kafka (redeliveries included).
    pub consumed: u64,
    /// Messages the handler rejected as permanent, published to `<topic>.dlq`.
    pub dead_lettered: u64,
    /// Retries of a message after a transient failure (one per backoff wait).
    pub retried: u64,
}

impl LoopCounters {
    pub fn counts(&self) -> LoopCounts {
        LoopCounts {
            consumed: self.consumed.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn consumed(&self) {
        self.consumed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }
}
