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

use tokio::sync::watch;

/// A partition of a topic.
pub(crate) type PartitionId = (String, i32);

#[derive(Debug, Default)]
struct Partition {
    /// Offsets handed to a handler (or waiting behind their key) and not finished.
    unfinished: BTreeSet<i64>,
    /// Unfinished offsets that will not run on this member: dropped before they
    /// started (a stop, a revoke, an earlier message of their key left unfinished) or
    /// left unfinished mid-retry by a stop. The position never passes them, but
    /// nothing here waits for them.
    dropped: BTreeSet<i64>,
    /// One past the highest offset received.
    next: i64,
    /// The position last stored (the offset the next owner would start at).
    stored: i64,
    /// Messages of the partition in a handler now (started, not yet finished or
    /// left unfinished).
    running: usize,
    /// The highest offset a handler started on. Permits are not handed out in offset
    /// order, so messages before it may still be waiting for one.
    last_started: Option<i64>,
    /// Being revoked: only the messages up to `last_started` still start.
    revoking: bool,
}

impl Partition {
    /// Everything before this offset is finished.
    fn contiguous_position(&self) -> i64 {
        self.unfinished.first().copied().unwrap_or(self.next)
    }

    /// Whether a handler started on `offset` or on a later message of the partition.
    fn started_through(&self, offset: i64) -> bool {
        self.last_started.is_some_and(|last| offset <= last)
    }

    /// Whether a revoke waits for `offset`: up to the last message started, not
    /// finished, and still able to run here (running, or waiting for a slot or its key).
    /// Once none is left the position passes every message that ran, and the next
    /// owner starts right after them.
    fn owes(&self, offset: i64) -> bool {
        self.started_through(offset)
            && self.unfinished.contains(&offset)
            && !self.dropped.contains(&offset)
    }

    /// How many messages a revoke still waits for ([`Partition::owes`]).
    fn owed_to_revoke(&self) -> usize {
        self.last_started.map_or(0, |last| {
            self.unfinished
                .range(..=last)
                .filter(|offset| self.owes(**offset))
                .count()
        })
    }
}

/// The unfinished offsets of every partition this member consumes, shared by the poll
/// thread, the handler tasks and the rebalance callback.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    partitions: Mutex<HashMap<PartitionId, Partition>>,
    /// Signalled whenever a message finishes or is dropped: the revoke hand-over and
    /// the shutdown wait on it.
    finished: Condvar,
    /// Bumped when a revoke begins: messages waiting for a handler slot check whether
    /// the revoke waits for them.
    revokes: watch::Sender<u64>,
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
                next: offset,
                stored: offset,
                ..Partition::default()
            });
        p.unfinished.insert(offset);
        p.next = p.next.max(offset + 1);
    }

    /// Whether a handler may start on `offset` now, and if so counts it as running.
    pub(crate) fn start(&self, topic: &str, partition: i32, offset: i64) -> Start {
        let mut partitions = self.lock();
        match partitions.get_mut(&(topic.to_owned(), partition)) {
            // Revoked while it waited: the next owner handles it.
            None => Start::Revoked,
            // Being revoked, and after every message that ran: the next owner starts
            // at it. (One before a message that ran still starts: otherwise the
            // position would stay before that message, and the next owner would
            // apply it again.)
            Some(p) if p.revoking && !p.started_through(offset) => Start::Revoked,
            // Another delivery of the same offset finished first.
            Some(p) if !p.unfinished.contains(&offset) => Start::AlreadyFinished,
            Some(p) => {
                p.running += 1;
                p.last_started = p.last_started.max(Some(offset));
                Start::Go
            }
        }
    }

    /// Whether a revoke under way waits for this received message: its partition is
    /// being revoked, and a message after it ran. It then starts on a slot of the
    /// revoke's own ([`crate::parallel`]), not behind the partitions that stay.
    pub(crate) fn is_owed_to_revoke(&self, topic: &str, partition: i32, offset: i64) -> bool {
        self.lock()
            .get(&(topic.to_owned(), partition))
            .is_some_and(|p| p.revoking && p.owes(offset))
    }

    /// Changes each time a revoke begins (see [`InFlight::is_owed_to_revoke`]).
    pub(crate) fn revokes(&self) -> watch::Receiver<u64> {
        self.revokes.subscribe()
    }

    /// A started message is left unfinished (shutdown during a retry): it no longer
    /// runs, and its offset stays unstored.
    pub(crate) fn leave_unfinished(&self, topic: &str, partition: i32, offset: i64) {
        if let Some(p) = self.lock().get_mut(&(topic.to_owned(), partition)) {
            p.running = p.running.saturating_sub(1);
            p.dropped.insert(offset);
        }
        self.finished.notify_all();
    }

    /// Received messages that will not start here (see [`Start`], and the messages
    /// waiting behind a key that stopped): their offsets stay unstored, and a revoke
    /// stops waiting for them.
    pub(crate) fn drop_unstarted(
        &self,
        topic: &str,
        partition: i32,
        offsets: impl IntoIterator<Item = i64>,
    ) {
        if let Some(p) = self.lock().get_mut(&(topic.to_owned(), partition)) {
            p.dropped.extend(offsets);
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

    /// Hands `partitions` over: messages after the last one started do not start any
    /// more (the next owner gets them); the running ones, and the waiting ones before
    /// the last started, are waited for (at most `within`: they store their offsets as
    /// they finish); then the partitions are forgotten. Blocks the calling thread: for
    /// the poll thread (the rebalance callback), never for a runtime thread. Returns
    /// how many were still owed: the next owner gets those again.
    pub(crate) fn revoke(&self, partitions: &[PartitionId], within: Duration) -> usize {
        {
            let mut guard = self.lock();
            for id in partitions {
                if let Some(p) = guard.get_mut(id) {
                    p.revoking = true;
                }
            }
        }
        self.revokes.send_modify(|n| *n += 1);
        let left = self.wait(within, |all| {
            partitions
                .iter()
                .filter_map(|id| all.get(id))
                .map(Partition::owed_to_revoke)
                .sum()
        });
        let mut guard = self.lock();
        for id in partitions {
            guard.remove(id);
        }
        left
    }

    /// Waits until no message is running, at most `within` (a stop: nothing new
    /// starts); returns how many still were. Blocks the calling thread.
    pub(crate) fn wait_idle(&self, within: Duration) -> usize {
        self.wait(within, |all| all.values().map(|p| p.running).sum())
    }

    /// Waits until `left` counts 0, re-counting each time a message finishes, at most
    /// `within`; returns the last count.
    fn wait(
        &self,
        within: Duration,
        left: impl Fn(&HashMap<PartitionId, Partition>) -> usize,
    ) -> usize {
        let deadline = Instant::now() + within;
        let mut guard = self.lock();
        loop {
            let count = left(&guard);
            let now = Instant::now();
            if count == 0 || now >= deadline {
                return count;
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
    /// Its partition was revoked (and it comes after every message that ran there):
    /// drop it, and the rest of its key (same partition).
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
    fn a_revoked_partition_starts_nothing_after_what_ran_and_waits_only_for_what_runs() {
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
        assert_eq!(t.wait_idle(Duration::from_secs(5)), 0);
    }

    #[test]
    fn a_revoke_lets_the_messages_before_the_last_started_run_so_the_position_passes_it() {
        let t = std::sync::Arc::new(InFlight::default());
        for offset in 1..=4 {
            t.receive("t", 0, offset);
        }
        // Handler slots are not handed out in offset order: 3 runs while 1 and 2 wait.
        assert_eq!(t.start("t", 0, 3), Start::Go);
        let revoke = {
            let t = std::sync::Arc::clone(&t);
            std::thread::spawn(move || t.revoke(&[("t".to_owned(), 0)], Duration::from_secs(10)))
        };
        while !t.lock()[&("t".to_owned(), 0)].revoking {
            std::thread::yield_now();
        }
        // 1 and 2 still start (3 ran after them); 4 does not (nothing after it ran).
        assert_eq!(t.start("t", 0, 4), Start::Revoked);
        assert_eq!(finish(&t, 3), (false, None));
        assert_eq!(t.start("t", 0, 1), Start::Go);
        assert_eq!(t.start("t", 0, 2), Start::Go);
        assert_eq!(finish(&t, 2), (false, None));
        assert!(!revoke.is_finished(), "the revoke waits for message 1");
        // 1 finishes: the position passes 3, the last that ran; the next owner starts
        // at 4 and applies nothing twice.
        assert_eq!(finish(&t, 1), (true, Some(4)));
        assert_eq!(revoke.join().expect("revoke"), 0);
    }

    #[test]
    fn a_revoke_does_not_wait_for_messages_dropped_before_they_started() {
        let t = InFlight::default();
        for offset in 1..=3 {
            t.receive("t", 0, offset);
        }
        assert_eq!(t.start("t", 0, 3), Start::Go);
        assert_eq!(finish(&t, 3), (false, None));
        // 1 and 2 will never run here (their keys stopped): nothing is owed.
        t.drop_unstarted("t", 0, [1, 2]);
        assert_eq!(t.revoke(&[("t".to_owned(), 0)], Duration::from_secs(10)), 0);
    }
}
