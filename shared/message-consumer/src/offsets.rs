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
    /// Messages of the partition in a handler now (started, not yet finished or
    /// left unfinished): what a revoke waits for.
    running: usize,
    /// Being revoked: nothing of it starts any more.
    revoking: bool,
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
                running: 0,
                revoking: false,
            });
        p.unfinished.insert(offset);
        p.next = p.next.max(offset + 1);
    }

    /// Whether a handler may start on `offset` now, and if so counts it as running.
    pub(crate) fn start(&self, topic: &str, partition: i32, offset: i64) -> Start {
        let mut partitions = self.lock();
        match partitions.get_mut(&(topic.to_owned(), partition)) {
            // Revoked (or being revoked) while it waited: the next owner handles it.
            None => Start::Revoked,
            Some(p) if p.revoking => Start::Revoked,
            // Another delivery of the same offset finished first.
            Some(p) if !p.unfinished.contains(&offset) => Start::AlreadyFinished,
            Some(p) => {
                p.running += 1;
                Start::Go
            }
        }
    }

    /// A started message is left unfinished (shutdown during a retry): it no longer
    /// runs, and its offset stays unstored.
    pub(crate) fn leave_unfinished(&self, topic: &str, partition: i32) {
        if let Some(p) = self.lock().get_mut(&(topic.to_owned(), partition)) {
            p.running = p.running.saturating_sub(1);
        }
        self.finished.notify_all();
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
        p.running = p.running.saturating_sub(1);
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

    /// Hands `partitions` over: nothing of them starts any more, the messages running
    /// there are waited for (at most `within`: they store their offsets as they
    /// finish), then the partitions are forgotten. Blocks the calling thread: for the
    /// poll thread (the rebalance callback), never for a runtime thread. Returns how
    /// many were still running.
    pub(crate) fn revoke(&self, partitions: &[PartitionId], within: Duration) -> usize {
        {
            let mut guard = self.lock();
            for id in partitions {
                if let Some(p) = guard.get_mut(id) {
                    p.revoking = true;
                }
            }
        }
        let left = self.wait_idle(Some(partitions), within);
        let mut guard = self.lock();
        for id in partitions {
            guard.remove(id);
        }
        left
    }

    /// Waits until no message of `partitions` (all, with `None`) is running, at most
    /// `within`; returns how many still were. Blocks the calling thread.
    pub(crate) fn wait_idle(&self, partitions: Option<&[PartitionId]>, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        let mut guard = self.lock();
        loop {
            let left: usize = match partitions {
                Some(ids) => ids
                    .iter()
                    .filter_map(|id| guard.get(id))
                    .map(|p| p.running)
                    .sum(),
                None => guard.values().map(|p| p.running).sum(),
            };
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
}

/// May a handler start on a message?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    Go,
    /// Its partition was revoked: drop it, and the rest of its key (same partition).
    Revoked,
    /// A copy of it already finished: skip it, the key goes on.
    AlreadyFinished,
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
    fn a_revoked_partition_starts_nothing_stores_nothing_and_waits_only_for_what_runs() {
        let t = InFlight::default();
        t.receive("t", 0, 1);
        t.receive("t", 0, 2);
        let id = ("t".to_owned(), 0);
        assert_eq!(t.start("t", 0, 1), Start::Go);
        // Offset 1 runs, offset 2 waits: the revoke waits for 1 only, and gives up at
        // its bound.
        assert_eq!(
            t.revoke(std::slice::from_ref(&id), Duration::from_millis(10)),
            1
        );
        assert_eq!(t.start("t", 0, 2), Start::Revoked);
        assert_eq!(finish(&t, 1), (false, None));
        assert_eq!(t.wait_idle(None, Duration::from_secs(5)), 0);
    }
}
