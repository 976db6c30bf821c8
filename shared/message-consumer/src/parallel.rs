//! Consuming in parallel without losing order (docs/en/04-consume.md, "consuming in
//! parallel").
//!
//! ```text
//! partitions ──poll thread──► keys ──► in-flight set ──► contiguous offset
//!  p0: a1 b1 a2 c1            a: a1 → a2 (one after the other)     p0: store up to the
//!  p1: d1 d2                  b: b1      (beside a and c)              first unfinished
//!                             c: c1      at most CONSUMER_CONCURRENCY
//!                             d: d1 → d2 handlers at once
//! ```
//!
//! - **Messages with the same key are handled strictly in order**: a key has at most
//!   one message in a handler; the next waits in the key's queue. An order's events
//!   share its key (the outbox row's key), so they are applied in the order published.
//!   A message without a key is keyed by its partition: it keeps partition order.
//! - **Messages with different keys run concurrently**, at most `concurrency` handlers
//!   at once (a semaphore). A transient retry holds back its own key only; its permit is
//!   given back while it waits, so other keys and partitions keep flowing.
//! - **Offsets**: each partition stores only its contiguous finished prefix
//!   ([`crate::offsets`]).
//! - **Back-pressure**: when `max_buffered` messages are received and not finished, the
//!   poll thread pauses the assigned partitions and resumes them once half have drained.
//!   It never stops polling: the member stays inside `max.poll.interval.ms`, and
//!   rebalances are served.
//! - **Revoke**: [`crate::hand_over`] waits for the revoked partitions' messages up to
//!   the last one started, which run on slots of the revoke's own (as many again, only
//!   while a revoke waits).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lifecycle::Shutdown;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::hand_over::HandOver;
use crate::offsets::{InFlight, Start};
use crate::settings::OffsetCommit;
use crate::worker::Worker;
use crate::{Handler, ReceivedMessage};

/// How long a graceful stop waits for the messages in flight to finish (they stop
/// retrying on the same switch, so this is a bound for a handler stuck elsewhere).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(15);
/// One poll's wait: how quickly the thread sees a shutdown or drained buffer.
const POLL_WAIT: Duration = Duration::from_millis(100);

/// The ordering unit: messages with equal `OrderKey` are handled one after the other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OrderKey {
    topic: String,
    partition: i32,
    /// The message key; `None` (no key) orders by the partition alone.
    key: Option<Vec<u8>>,
}

impl OrderKey {
    fn of(message: &ReceivedMessage) -> Self {
        Self {
            topic: message.topic.clone(),
            partition: message.partition,
            key: message.key.clone(),
        }
    }
}

/// The keys that have a message in a handler, each with the messages waiting behind it.
struct Lanes<H> {
    waiting: Mutex<HashMap<OrderKey, VecDeque<ReceivedMessage>>>,
    permits: Arc<Semaphore>,
    /// The revoke's own handler slots: the messages a revoke waits for start on these,
    /// not behind the partitions that stay (which keep `permits`).
    revoke_permits: Arc<Semaphore>,
    worker: Arc<Worker<H>>,
    consumer: Arc<BaseConsumer<HandOver>>,
    in_flight: Arc<InFlight>,
    shutdown: Shutdown,
    runtime: tokio::runtime::Handle,
}

impl<H: Handler> Lanes<H> {
    /// Hands `message` to its key: queued behind an earlier message of the same key, or
    /// started at once in a task of its own.
    fn submit(self: &Arc<Self>, message: ReceivedMessage) {
        let key = OrderKey::of(&message);
        let mut waiting = self
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(queue) = waiting.get_mut(&key) {
            queue.push_back(message);
            return;
        }
        waiting.insert(key.clone(), VecDeque::new());
        drop(waiting);
        let lanes = Arc::clone(self);
        self.runtime
            .spawn(async move { lanes.run_key(key, message).await });
    }

    /// Handles the key's messages one by one until its queue is empty, or until one is
    /// left unfinished (a shutdown, a revoke): the messages behind it must not overtake
    /// it, so they stay unfinished too and come again, in order, to whoever owns the
    /// partition next.
    async fn run_key(self: Arc<Self>, key: OrderKey, first: ReceivedMessage) {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            let finished = self.handle_one(&message).await;
            let mut waiting = self
                .waiting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !finished {
                // Start nothing more of this key: what waits here keeps its offset
                // unstored.
                if let Some(dropped) = waiting.remove(&key) {
                    self.in_flight.drop_unstarted(
                        &key.topic,
                        key.partition,
                        dropped.iter().map(|m| m.offset),
                    );
                }
                return;
            }
            match waiting.get_mut(&key).and_then(VecDeque::pop_front) {
                Some(m) => next = Some(m),
                None => {
                    // The key is idle: the next message of it starts a new task.
                    waiting.remove(&key);
                }
            }
        }
    }

    /// A handler slot: one of `permits`, or, once a revoke waits for this message, one
    /// of `revoke_permits`. Without its own slots a revoke would wait for its messages
    /// behind every waiting message of the partitions that stay, and give up first.
    /// `None`: the slots are closed.
    async fn slot_for(
        &self,
        message: &ReceivedMessage,
    ) -> Option<(&Semaphore, SemaphorePermit<'_>)> {
        let (topic, partition, offset) = (&message.topic, message.partition, message.offset);
        // Subscribed before the check: a revoke that begins after it wakes the wait.
        let mut revokes = self.in_flight.revokes();
        loop {
            if self.in_flight.is_owed_to_revoke(topic, partition, offset) {
                let permit = self.revoke_permits.acquire().await.ok()?;
                return Some((&self.revoke_permits, permit));
            }
            tokio::select! {
                permit = self.permits.acquire() => return Some((&self.permits, permit.ok()?)),
                changed = revokes.changed() => changed.ok()?,
            }
        }
    }

    /// Waits for a handler slot, handles one message and stores what became
    /// contiguous. `false`: left unfinished (not started because of a shutdown or a
    /// revoke, or a shutdown during its retries).
    async fn handle_one(&self, message: &ReceivedMessage) -> bool {
        let (topic, partition, offset) = (&message.topic, message.partition, message.offset);
        let not_started = || {
            self.in_flight.drop_unstarted(topic, partition, [offset]);
            false
        };
        let Some((slots, permit)) = self.slot_for(message).await else {
            return not_started();
        };
        // Starting is decided now, with a slot in hand: a message that waited while its
        // partition was revoked (or the service began to stop) does not start at all.
        if self.shutdown.is_triggered() {
            return not_started();
        }
        match self.in_flight.start(topic, partition, offset) {
            Start::Go => {}
            Start::Revoked => return not_started(),
            Start::AlreadyFinished => return true,
        }
        let outcome = self
            .worker
            .apply(message, &self.shutdown, Some((slots, permit)))
            .await;
        if outcome.is_none() {
            // Shutdown during a retry: left unfinished, so its offset is never stored
            // and it comes again.
            self.in_flight.leave_unfinished(topic, partition, offset);
            return false;
        }
        // Crash point C2: the effect is committed, the offset not stored yet.
        lifecycle::CrashPoint::C2.reached();
        let consumer = &self.consumer;
        let reached = self.in_flight.finish(topic, partition, offset, |position| {
            // `store_offset(o)` stores o + 1: the position is the next offset to read.
            if let Err(error) = consumer.store_offset(topic, partition, position - 1) {
                // The partition is no longer assigned: nothing to store for it.
                tracing::debug!(%error, topic, partition, "offset not stored");
            }
        });
        if !reached {
            // Crash point C3: the effect is committed, but an earlier offset of the
            // partition is unfinished, so the stored position stays before this
            // message. A crash here re-delivers it, and the inbox recognises it.
            lifecycle::CrashPoint::C3.reached();
        }
        true
    }
}

/// The poll thread: receives, hands each message to its key, bounds what is in flight,
/// and on shutdown lets the messages in flight finish and commits. Runs on a thread of
/// its own (`spawn_blocking`), where the rebalance callback may block.
///
/// `abandoned` is set when the `run` future is dropped without a shutdown (its task
/// aborted, the runtime going away): the thread then stops at once, as a crash would,
/// rather than poll for a loop nobody awaits.
pub(crate) fn poll_until_stopped<H: Handler>(
    consumer: Arc<BaseConsumer<HandOver>>,
    in_flight: Arc<InFlight>,
    worker: Arc<Worker<H>>,
    shutdown: Shutdown,
    abandoned: Arc<AtomicBool>,
    runtime: tokio::runtime::Handle,
) {
    let concurrency = worker.settings.concurrency.max(1);
    let max_buffered = worker.settings.max_buffered.max(concurrency);
    let offset_commit = worker.settings.offset_commit;
    let lanes = Arc::new(Lanes {
        waiting: Mutex::new(HashMap::new()),
        permits: Arc::new(Semaphore::new(concurrency)),
        revoke_permits: Arc::new(Semaphore::new(concurrency)),
        worker,
        consumer: Arc::clone(&consumer),
        in_flight: Arc::clone(&in_flight),
        shutdown: shutdown.clone(),
        runtime,
    });
    let mut paused = false;
    while !shutdown.is_triggered() {
        if abandoned.load(Ordering::Relaxed) {
            return;
        }
        paused = apply_back_pressure(&consumer, in_flight.total(), max_buffered, paused);
        let message = match consumer.poll(POLL_WAIT) {
            None => continue,
            Some(Err(error)) => {
                tracing::warn!(%error, "consume failed");
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            Some(Ok(m)) => ReceivedMessage::from_borrowed(&m),
        };
        if offset_commit == OffsetCommit::BeforeEffect {
            commit_before_effect(&consumer, &message);
        }
        in_flight.receive(&message.topic, message.partition, message.offset);
        lanes.submit(message);
    }
    // Stop taking work, finish what is in flight (handlers stop retrying on the same
    // switch), then commit the stored offsets.
    let left = in_flight.wait_idle(SHUTDOWN_WAIT);
    if left > 0 {
        tracing::info!(
            left,
            "stopping with messages unfinished: they come again after the restart"
        );
    }
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        // "No offset" is normal when nothing was consumed.
        tracing::debug!(%error, "final offset commit");
    }
}

/// Pauses the assignment while `buffered` is at the bound, resumes it at half. Returns
/// whether the partitions are paused now. Called before each poll, so a partition
/// assigned while paused is paused too.
fn apply_back_pressure(
    consumer: &BaseConsumer<HandOver>,
    buffered: usize,
    max_buffered: usize,
    paused: bool,
) -> bool {
    let over = buffered >= max_buffered;
    let drained = buffered <= max_buffered / 2;
    if !(over || (paused && drained)) {
        return paused;
    }
    let Ok(assignment) = consumer.assignment() else {
        return paused;
    };
    if over {
        if let Err(error) = consumer.pause(&assignment) {
            tracing::warn!(%error, "pause");
        }
        true
    } else {
        if let Err(error) = consumer.resume(&assignment) {
            tracing::warn!(%error, "resume");
        }
        false
    }
}

/// Sets its flag when dropped: `run` holds one, so the poll thread learns that nobody
/// awaits the loop any more.
pub(crate) struct AbandonOnDrop(pub(crate) Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The unsafe toggle: the group believes the message done before it is applied.
pub(crate) fn commit_before_effect(consumer: &BaseConsumer<HandOver>, message: &ReceivedMessage) {
    let mut done = rdkafka::TopicPartitionList::new();
    let committed = done
        .add_partition_offset(
            &message.topic,
            message.partition,
            rdkafka::Offset::Offset(message.offset + 1),
        )
        .and_then(|()| consumer.commit(&done, CommitMode::Sync));
    if let Err(error) = committed {
        tracing::warn!(%error, "commit before effect");
    }
}
