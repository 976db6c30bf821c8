//! The streaming mode (`RELAY_MODE=stream`, the default): the study note's second
//! variant, "send, then mark the row from the delivery callback".
//!
//! A wave waits for the slowest ack of its batch before it marks and claims again, so
//! the producer idles through every `acks=all` round trip. Here two tasks share the
//! work instead:
//!
//! - the **claimer** claims rows, hands them to the producer's queue and claims again
//!   at once, as long as there is room in flight;
//! - the **settler** receives each row's delivery report as it arrives (the producer's
//!   delivery callback, through its future) and marks the acked rows `SENT`, all the
//!   acks that are in at that moment in one statement; failed sends are released for
//!   retry as in the wave mode (`mark::release_for_retry`).
//!
//! **The bound.** A row takes a slot of `RELAY_MAX_IN_FLIGHT` when it is claimed and
//! gives it back when it is settled (marked, or released). The bound caps what the
//! producer's queue holds, what a crash sends again, and how many rows hold a lease.
//!
//! **Per-key order.** A row in flight is still `SENDING`, so the claim skips its key's
//! later rows until its ack is marked (`claim.rs`): a key never has two rows in flight,
//! here or across relays. Different keys stream side by side; within one partition the
//! idempotent producer keeps the order the rows were handed over in, retries included.
//!
//! **Crash points.** R1 (claimed, nothing sent) is where the claimer hands a claim to
//! the producer. R3 is the settler's: **acked, not yet marked**. A crash there leaves
//! rows in every stage: marked (done), acked but not marked (sent again after the
//! lease: a duplicate), handed to the producer but not acked (maybe on the topic, sent
//! again after the lease: maybe a duplicate), claimed and not sent (sent after the
//! lease). Duplicates, never a loss, and each key still in order: its next row was
//! never claimed while this one was unmarked.

use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::producer::future_producer::Delivery;
use service_runtime::Shutdown;
use tokio::sync::{Semaphore, mpsc};

use super::metrics::RelayMetrics;
use super::publish::{self, Sent};
use super::{ClaimedRow, Relay, Signals, backoff, claim, mark};

/// A row handed to the producer, or refused by it at once (its queue full).
type Handed = (ClaimedRow, Result<Sent, String>);
/// A row and its delivery report.
type Settled = (ClaimedRow, Result<Delivery, String>);

impl Relay {
    /// Starts the streaming relay's claimer and settler on `tasks`.
    pub(super) fn spawn_stream(
        &self,
        tasks: &mut tokio::task::JoinSet<()>,
        signals: &Arc<Signals>,
        shutdown: &Shutdown,
    ) {
        let room = Arc::new(Semaphore::new(self.config.max_in_flight));
        // Unbounded, yet never longer than `max_in_flight`: a row enters only with a slot.
        let (handed, to_settle) = mpsc::unbounded_channel();
        tasks.spawn(
            self.clone()
                .claimer(handed, room.clone(), signals.clone(), shutdown.clone()),
        );
        tasks.spawn(self.clone().settler(to_settle, room, signals.clone()));
    }

    /// Claims while there is room in flight and rows to claim, and hands each claimed
    /// row to the producer without waiting for its ack. Stops at `shutdown`; dropping
    /// `handed` then tells the settler that nothing more is coming.
    async fn claimer(
        self,
        handed: mpsc::UnboundedSender<Handed>,
        room: Arc<Semaphore>,
        signals: Arc<Signals>,
        shutdown: Shutdown,
    ) {
        // A claim asks for a whole batch of slots (or all of them, if fewer): under a
        // backlog the claims stay well filled instead of one per settled row.
        let max_in_flight = u32::try_from(self.config.max_in_flight).unwrap_or(u32::MAX);
        let batch = u32::try_from(self.config.batch_size)
            .unwrap_or(u32::MAX)
            .min(max_in_flight);
        let mut failures: u32 = 0;
        let mut last_claim: Option<tokio::time::Instant> = None;
        let mut full = false;
        while !shutdown.is_triggered() {
            // The linger, as in the wave's lead lane: after a claim that was not full, the
            // next waits at least `linger`, so rows committing under a steady stream
            // travel together instead of one claim and one produce request each. A full
            // claim means a backlog: the next one follows at once.
            if let (false, Some(at)) = (full, last_claim) {
                tokio::select! {
                    () = shutdown.wait() => break,
                    () = tokio::time::sleep_until(at + self.config.linger) => {},
                }
            }
            let slots = tokio::select! {
                () = shutdown.wait() => break,
                slots = room.clone().acquire_many_owned(batch) => match slots {
                    Ok(slots) => slots,
                    Err(_closed) => break,
                },
            };
            last_claim = Some(tokio::time::Instant::now());
            let wait = match claim::claim(&self.pool, &self.config, i64::from(batch)).await {
                Ok(rows) => {
                    failures = 0;
                    full = rows.len() == batch as usize;
                    // Each claimed row keeps its slot until the settler gives it back;
                    // the unused slots go back now.
                    slots.forget();
                    room.add_permits(batch as usize - rows.len());
                    self.hand_over(rows, &handed);
                    if full {
                        continue;
                    }
                    self.config.poll_interval
                }
                Err(error) => {
                    full = false;
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, failures, "relay claim failed");
                    backoff(failures)
                }
            };
            tokio::select! {
                () = shutdown.wait() => break,
                () = tokio::time::sleep(wait) => {},
                // After a failure, the backoff wins over wake-ups.
                () = signals.new_rows.notified(), if failures == 0 => {},
                // A mark may have made a key's next row claimable.
                () = signals.settled.notified(), if failures == 0 => {},
            }
        }
    }

    /// Hands each row to the producer's queue, in `seq` order, and passes it on to the
    /// settler with the future of its delivery report.
    fn hand_over(&self, rows: Vec<ClaimedRow>, handed: &mpsc::UnboundedSender<Handed>) {
        if rows.is_empty() {
            return;
        }
        // Crash point R1: claimed, nothing sent. The lease brings the rows back.
        service_runtime::crash_point("R1");
        for row in rows {
            let sent = publish::enqueue(&self.producer, &row);
            // The settler outlives the claimer, so this send finds it listening.
            let _ = handed.send((row, sent));
        }
    }

    /// Collects delivery reports as they arrive and settles them in batches: every
    /// report that is in when one arrives is settled with it. Ends when the claimer is
    /// gone and every row it handed over is settled.
    async fn settler(
        self,
        mut to_settle: mpsc::UnboundedReceiver<Handed>,
        room: Arc<Semaphore>,
        signals: Arc<Signals>,
    ) {
        let mut awaiting = FuturesUnordered::new();
        let mut claimer_running = true;
        loop {
            let first = tokio::select! {
                // New rows first: their reports cannot arrive before they are awaited.
                biased;
                handed = to_settle.recv(), if claimer_running => match handed {
                    Some((row, Ok(sent))) => {
                        awaiting.push(delivery_report(row, sent, self.metrics.clone()));
                        continue;
                    }
                    // Refused by the producer at once: settled like a failed delivery.
                    Some((row, Err(error))) => (row, Err(error)),
                    None => {
                        claimer_running = false;
                        continue;
                    }
                },
                Some(settled) = awaiting.next(), if !awaiting.is_empty() => settled,
                else => break,
            };
            let mut batch = vec![first];
            while let Some(Some(settled)) = awaiting.next().now_or_never() {
                batch.push(settled);
            }
            let settled = batch.len();
            self.settle(batch).await;
            // Slots back, and a wake-up: room to claim, and the next rows of these keys
            // are claimable now.
            room.add_permits(settled);
            signals.settled.notify_one();
        }
    }

    /// Marks the acked rows of `batch` sent in one statement, and releases the failed
    /// ones for retry.
    async fn settle(&self, batch: Vec<Settled>) {
        let mut acked = Vec::with_capacity(batch.len());
        for (row, report) in &batch {
            match report {
                Ok(delivery) => acked.push((row, delivery)),
                Err(error) => {
                    // A database failure here leaves the row `SENDING`: its lease runs
                    // out and it is claimed and sent again, the retry it was due anyway.
                    if let Err(db_error) = self.release_failed(row, error).await {
                        tracing::warn!(event_id = %row.id, %db_error, "releasing a failed send failed; the lease brings the row back");
                    }
                }
            }
        }
        if acked.is_empty() {
            return;
        }
        self.metrics.published.increment(acked.len() as u64);
        // Crash point R3: acked, not yet marked. The rows are in Kafka, but still
        // `SENDING` here: after the lease they are sent again, a duplicate on the
        // topic, never a loss (docs/en/01-overview.md).
        service_runtime::crash_point("R3");
        // Mark sent only after the broker acked each row. A failing database is retried
        // while the lease holds; past it the version guard would refuse the mark anyway
        // (another relay owns the rows and sends them again).
        let started = Instant::now();
        let mut failures: u32 = 0;
        while let Err(error) = mark::mark_sent(&self.pool, &acked, &self.config.relay_id).await {
            failures = failures.saturating_add(1);
            if started.elapsed() >= self.config.lease {
                tracing::warn!(%error, rows = acked.len(), "mark-sent failed until the lease ran out; the rows will be sent again");
                return;
            }
            tracing::warn!(%error, failures, rows = acked.len(), "mark-sent failed; retrying");
            tokio::time::sleep(backoff(failures)).await;
        }
    }
}

/// Waits for one row's delivery report.
async fn delivery_report(row: ClaimedRow, sent: Sent, metrics: RelayMetrics) -> Settled {
    let report = sent.acked(&metrics).await;
    (row, report)
}
