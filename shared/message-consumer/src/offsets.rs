//! Which offsets of each partition may be committed while messages finish out of order.
//!
//! With several messages in flight, offset 7 may finish before offset 5. The group
//! stores **one** number per partition — "everything before this is done" — so it may
//! only move up to the first message that is not finished. Storing 8 because 7 is done
//! would tell the next owner of the partition that 5 is done too: a crash then loses 5.
//!
//! So each partition keeps the set of offsets received but not finished. The position to
//! store is the smallest of them, or, when none is left, one past the highest received.
//! A crash re-delivers everything from that position: the unfinished messages (which must
//! come again) and the finished ones after the first gap (which the inbox recognises).
//! This is the "offset tracking with gaps" of Confluent's Parallel Consumer, kept in
//! memory only: it stores the contiguous prefix, not the gaps, so a restart re-delivers
//! more than Parallel Consumer would, never less (docs/en/04-consume.md).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A partition of a topic.
pub(crate) type PartitionId = (String, i32);

#[derive(Debug, Default)]
struct Partition {
    /// Offsets handed to a handler (or waiting behind their key) and not finished.
    unfinished: BTreeSet<i64>,
    /// One past the highest offset received.
    next: i64,
    /// The position last stored (the offset the next owner would start at).
    stored: i64,
}

impl Partition {
    /// Everything before this offset is finished.
    fn contiguous_position(&self) -> i64 {
        self.unfinished.first().copied().unwrap_or(self.next)
    }
}

/// The unfinished offsets of every partition this member consumes, shared by the poll
/// thread, the handler tasks and the rebalance callback.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    partitions: Mutex<HashMap<PartitionId, Partition>>,
    /// Signalled whenever a message finishes: the revoke hand-over and the shutdown
    /// wait on it.
    finished: Condvar,
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, HashMap<PartitionId, Partition>> {
        // A panic elsewhere while holding the lock leaves consistent data (every
        // update is one insert or remove): keep going.
        self.partitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A message was received: it stays unfinished until [`InFlight::finish`].
    pub(crate) fn receive(&self, topic: &str, partition: i32, offset: i64) {
        let mut partitions = self.lock();
        let p = partitions
            .entry((topic.to_owned(), partition))
            .or_insert_with(|| Partition {
                unfinished: BTreeSet::new(),
                next: offset,
                stored: offset,
            });
        p.unfinished.insert(offset);
        p.next = p.next.max(offset + 1);
    }

    /// Whether `offset` is still waiting to be handled here. False once another
    /// delivery of it finished, or once its partition was revoked and forgotten: then
    /// the partition's next owner handles it.
    pub(crate) fn is_unfinished(&self, topic: &str, partition: i32, offset: i64) -> bool {
        self.lock()
            .get(&(topic.to_owned(), partition))
            .is_some_and(|p| p.unfinished.contains(&offset))
    }

    /// The message's effect (or its dead letter) is durable. When that moves the
    /// partition's contiguous position, `store` is called with the new position
    /// **under the lock**, so a revoke that sees the partition drained also sees its
    /// offset stored. Returns whether the position reached past this message; `false`
    /// is the state "effect committed, offset not yet contiguous" (crash point C3).
    pub(crate) fn finish(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        store: impl FnOnce(i64),
    ) -> bool {
        let mut partitions = self.lock();
        let Some(p) = partitions.get_mut(&(topic.to_owned(), partition)) else {
            // Revoked and forgotten: the position was handed over without this message,
            // whose next owner gets it again (and its inbox recognises it).
            return false;
        };
        p.unfinished.remove(&offset);
        let position = p.contiguous_position();
        if position > p.stored {
            p.stored = position;
            store(position);
        }
        drop(partitions);
        self.finished.notify_all();
        position > offset
    }

    /// Messages received and not finished, over all partitions: what the poll thread
    /// bounds by pausing.
    pub(crate) fn total(&self) -> usize {
        self.lock().values().map(|p| p.unfinished.len()).sum()
    }

    /// Waits until none of `partitions` has an unfinished message, at most `within`.
    /// Blocks the calling thread: for the poll thread (the rebalance callback, the
    /// shutdown), never for a runtime thread. Returns what was still unfinished.
    pub(crate) fn wait_drained(&self, partitions: &[PartitionId], within: Duration) -> usize {
        let deadline = Instant::now() + within;
        let mut guard = self.lock();
        loop {
            let left: usize = partitions
                .iter()
                .filter_map(|id| guard.get(id))
                .map(|p| p.unfinished.len())
                .sum();
            let now = Instant::now();
            if left == 0 || now >= deadline {
                return left;
            }
            guard = self
                .finished
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Every partition with something tracked.
    pub(crate) fn partitions(&self) -> Vec<PartitionId> {
        self.lock().keys().cloned().collect()
    }

    /// Drops the partitions (revoked): later finishes there store nothing.
    pub(crate) fn forget(&self, partitions: &[PartitionId]) {
        let mut guard = self.lock();
        for id in partitions {
            guard.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finish(t: &InFlight, offset: i64) -> (bool, Option<i64>) {
        let mut stored = None;
        let past = t.finish("t", 0, offset, |p| stored = Some(p));
        (past, stored)
    }

    #[test]
    fn the_stored_position_never_passes_an_unfinished_message() {
        let t = InFlight::default();
        for offset in 5..=8 {
            t.receive("t", 0, offset);
        }
        // 6, 7 and 8 finish before 5: nothing may be stored, 5 must come again.
        assert_eq!(finish(&t, 7), (false, None));
        assert_eq!(finish(&t, 8), (false, None));
        assert_eq!(finish(&t, 6), (false, None));
        // 5 finishes: everything up to 8 is done, the next owner starts at 9.
        assert_eq!(finish(&t, 5), (true, Some(9)));
        assert_eq!(t.total(), 0);
    }

    #[test]
    fn the_prefix_moves_as_far_as_the_first_gap() {
        let t = InFlight::default();
        for offset in [10, 11, 13, 14] {
            // 12 is not a message (a compacted or transaction-marker offset).
            t.receive("t", 0, offset);
        }
        assert_eq!(finish(&t, 10), (true, Some(11)));
        assert_eq!(finish(&t, 13), (false, None));
        assert_eq!(finish(&t, 11), (true, Some(14)));
        assert_eq!(finish(&t, 14), (true, Some(15)));
    }

    #[test]
    fn a_forgotten_partition_stores_nothing_and_a_drained_one_waits_for_nobody() {
        let t = InFlight::default();
        t.receive("t", 0, 1);
        let id = ("t".to_owned(), 0);
        assert_eq!(
            t.wait_drained(std::slice::from_ref(&id), Duration::from_millis(10)),
            1
        );
        t.forget(std::slice::from_ref(&id));
        assert_eq!(finish(&t, 1), (false, None));
        assert!(!t.is_unfinished("t", 0, 1));
        assert_eq!(t.wait_drained(&[id], Duration::from_secs(5)), 0);
    }
}
