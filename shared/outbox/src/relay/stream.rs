//! The streaming mode (`RELAY_MODE=stream`, the default): the study note's second
//! variant, "send, then mark the row from the delivery callback".
//!
//! A wave waits for the slowest ack of its batch before it marks and claims again, so
//! the producer idles through every `acks=all` round trip. Here two tasks share the
//! work instead:
//!
//! - the **claimers** claim rows, hand them to the producer's queue and claim again at
//!   once, as long as there is room in flight;
//! - the **settler** receives each row's delivery report as it arrives (the producer's
//!   delivery callback, through its future) and marks the acked rows `SENT`, all the
//!   acks that are in at that moment in one statement; failed sends are released for
//!   retry as in the wave mode (`mark::release_for_retry`).
//!
//! **Statements in flight.** Claims and marks are database round trips of their own,
//! and past a few thousand rows a second they, not the broker, set the pace. So up to
//! `RELAY_CONCURRENCY` claims and as many marks run at a time. The claimers take turns
//! as the wave's lanes do: the **lead** claimer answers notifications, marks and the
//! poll timer; a **helper** wakes only when a claim comes back full (a backlog) and
//! sleeps again after one that is not, so that a trickle is not split into tiny claims.
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
use lifecycle::Shutdown;
use rdkafka::producer::future_producer::Delivery;
use tokio::sync::{Semaphore, mpsc};

use super::metrics::RelayMetrics;
use super::publish::{self, SendFailure, Sent};
use super::{ClaimedRow, Relay, Signals, claim, mark};

/// A row handed to the producer, or refused by it at once (its queue full).
type Handed = (ClaimedRow, Result<Sent, SendFailure>);
/// A row and its delivery report.
type Settled = (ClaimedRow, Result<Delivery, SendFailure>);

impl Relay {
    /// Starts the streaming relay's claimers and settler on `tasks`.
    pub(super) fn spawn_stream(
        &self,
        tasks: &mut tokio::task::JoinSet<()>,
        signals: &Arc<Signals>,
        shutdown: &Shutdown,
    ) {
        let room = Arc::new(Semaphore::new(self.config.max_in_flight));
        // Unbounded, yet never longer than `max_in_flight`: a row enters only with a slot.
        let (handed, to_settle) = mpsc::unbounded_channel();
        tasks.spawn(self.clone().lead_claimer(
            handed.clone(),
            room.clone(),
            signals.clone(),
            shutdown.clone(),
        ));
        for lane in 1..self.config.concurrency {
            tasks.spawn(self.clone().helper_claimer(
                lane,
                handed.clone(),
                room.clone(),
                signals.clone(),
                shutdown.clone(),
            ));
        }
        tasks.spawn(self.clone().settler(to_settle, room, signals.clone()));
    }

    /// The rows one claim asks for: a whole batch of slots (or all of them, if fewer),
    /// so that under a backlog the claims stay well filled instead of one per settled
    /// row.
    fn claim_size(&self) -> u32 {
        let max_in_flight = u32::try_from(self.config.max_in_flight).unwrap_or(u32::MAX);
        u32::try_from(self.config.batch_size)
            .unwrap_or(u32::MAX)
            .min(max_in_flight)
    }

    /// Waits for room, claims and hands the rows over. A full claim wakes a helper
    /// claimer: more rows are waiting. `None` at shutdown; otherwise whether the claim
    /// came back full.
    async fn claim_and_hand_over(
        &self,
        handed: &mpsc::UnboundedSender<Handed>,
        room: &Arc<Semaphore>,
        signals: &Signals,
        shutdown: &Shutdown,
    ) -> Option<Result<bool, sqlx::Error>> {
        let size = self.claim_size();
        let slots = tokio::select! {
            () = shutdown.wait() => return None,
            slots = room.clone().acquire_many_owned(size) => slots.ok()?,
        };
        let rows = match claim::claim(&self.pool, &self.config, i64::from(size)).await {
            Ok(rows) => rows,
            Err(error) => return Some(Err(error)),
        };
        let full = rows.len() == size as usize;
        if full {
            signals.backlog.notify_one();
        }
        // Each claimed row keeps its slot until the settler gives it back; the unused
        // slots go back now.
        slots.forget();
        room.add_permits(size as usize - rows.len());
        self.hand_over(rows, handed);
        Some(Ok(full))
    }

    /// The lead claimer: claims back to back while they come back full, and otherwise
    /// waits for a wake-up (a new row, a mark, the poll timer) and the linger. Stops at
    /// `shutdown`; dropping `handed` tells the settler one claimer fewer is running.
    async fn lead_claimer(
        self,
        handed: mpsc::UnboundedSender<Handed>,
        room: Arc<Semaphore>,
        signals: Arc<Signals>,
        shutdown: Shutdown,
    ) {
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
            last_claim = Some(tokio::time::Instant::now());
            let wait = match self
                .claim_and_hand_over(&handed, &room, &signals, &shutdown)
                .await
            {
                None => break,
                Some(Ok(true)) => {
                    (failures, full) = (0, true);
                    continue;
                }
                Some(Ok(false)) => {
                    (failures, full) = (0, false);
                    self.config.poll_interval
                }
                Some(Err(error)) => {
                    full = false;
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, failures, "relay claim failed");
                    lifecycle::backoff(failures, super::DATABASE_BACKOFF_CAP)
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

    /// A helper claimer: asleep until a full claim wakes it, then claims while they come
    /// back full. A failure sends it back to sleep; the lead keeps the backoff.
    async fn helper_claimer(
        self,
        lane: usize,
        handed: mpsc::UnboundedSender<Handed>,
        room: Arc<Semaphore>,
        signals: Arc<Signals>,
        shutdown: Shutdown,
    ) {
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                () = signals.backlog.notified() => {},
            }
            loop {
                match self
                    .claim_and_hand_over(&handed, &room, &signals, &shutdown)
                    .await
                {
                    None => return,
                    Some(Ok(true)) => {}
                    Some(Ok(false)) => break,
                    Some(Err(error)) => {
                        tracing::warn!(%error, lane, "relay claim failed");
                        break;
                    }
                }
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
        lifecycle::CrashPoint::R1.reached();
        for row in rows {
            let sent = publish::enqueue(&self.producer, &row);
            // The settler outlives the claimer, so this send finds it listening.
            let _ = handed.send((row, sent));
        }
    }

    /// Collects delivery reports as they arrive and settles them in batches: every
    /// report that is in when a mark can start goes into that mark, and up to
    /// `RELAY_CONCURRENCY` marks run at a time. Ends when every claimer is gone and
    /// every row they handed over is settled.
    async fn settler(
        self,
        mut to_settle: mpsc::UnboundedReceiver<Handed>,
        room: Arc<Semaphore>,
        signals: Arc<Signals>,
    ) {
        let mut awaiting = FuturesUnordered::new();
        let mut marking = FuturesUnordered::new();
        let mut ready: Vec<Settled> = Vec::new();
        let mut claimers_running = true;
        loop {
            tokio::select! {
                // New rows first: their reports cannot arrive before they are awaited.
                biased;
                handed = to_settle.recv(), if claimers_running => match handed {
                    Some((row, Ok(sent))) => {
                        awaiting.push(delivery_report(row, sent, self.metrics.clone()));
                    }
                    // Refused by the producer at once: settled like a failed delivery.
                    Some((row, Err(error))) => ready.push((row, Err(error))),
                    None => claimers_running = false,
                },
                Some(settled) = marking.next(), if !marking.is_empty() => {
                    // Slots back, and a wake-up: room to claim, and the next rows of
                    // these keys are claimable now.
                    room.add_permits(settled);
                    signals.settled.notify_one();
                }
                Some(settled) = awaiting.next(), if !awaiting.is_empty() => {
                    ready.push(settled);
                    while let Some(Some(settled)) = awaiting.next().now_or_never() {
                        ready.push(settled);
                    }
                }
                else => break,
            }
            if !ready.is_empty() && marking.len() < self.config.concurrency {
                let batch = std::mem::take(&mut ready);
                marking.push(async {
                    let settled = batch.len();
                    self.settle(batch).await;
                    settled
                });
            }
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
        lifecycle::CrashPoint::R3.reached();
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
            tokio::time::sleep(lifecycle::backoff(failures, super::DATABASE_BACKOFF_CAP)).await;
        }
    }
}

/// Waits for one row's delivery report.
async fn delivery_report(row: ClaimedRow, sent: Sent, metrics: RelayMetrics) -> Settled {
    let report = sent.acked(&metrics).await;
    (row, report)
}
