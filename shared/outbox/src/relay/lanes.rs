//! The wave mode (`RELAY_MODE=wave`): passes in lanes, each pass claim → publish →
//! await every ack → mark ([`Relay::publish_and_mark`]), up to `RELAY_CONCURRENCY`
//! passes in flight.
//!
//! The **lead lane** is woken by `LISTEN outbox_new` (or the poll timer) and runs
//! passes back to back until one finds nothing. At a steady trickle it is the only lane
//! at work, and each of its passes takes everything that committed during the previous
//! one: few, well-filled batches.
//!
//! **Helper lanes** wake only when a claim comes back full (more rows are waiting than
//! one batch holds): the full pass wakes one helper before it sends, that helper's full
//! pass wakes the next, and so on. While one lane awaits its acks (an `acks=all` round
//! trip through the followers) and its mark, the others claim and send the next
//! batches, so a backlog drains with several batches in flight. A helper goes back to
//! sleep after a pass that is not full.
//!
//! Why not let every lane answer notifications: at a steady trickle they would split
//! the same rows into many tiny passes, each paying its own claim, produce request and
//! mark. On this project's 2-core machine that made the end-to-end latency at 100
//! orders/s 16 times worse (docs/en/08-load-and-benchmark.md).

use std::sync::Arc;

use lifecycle::Shutdown;

use super::{Relay, RelayError, Signals};

impl Relay {
    /// Starts the lanes of the wave mode on `tasks`.
    pub(super) fn spawn_lanes(
        &self,
        tasks: &mut tokio::task::JoinSet<()>,
        signals: &Arc<Signals>,
        shutdown: &Shutdown,
    ) {
        tasks.spawn(self.clone().lead_lane(signals.clone(), shutdown.clone()));
        for lane in 1..self.config.concurrency {
            tasks.spawn(
                self.clone()
                    .helper_lane(lane, signals.clone(), shutdown.clone()),
            );
        }
    }

    /// A pass inside a lane: a full claim means more rows are waiting, so it wakes a
    /// helper lane before it sends. Returns how many rows it claimed.
    async fn lane_pass(&self, signals: &Signals) -> Result<usize, RelayError> {
        let rows = self.claim().await?;
        let claimed = rows.len();
        if claimed as i64 >= self.config.batch_size {
            signals.backlog.notify_one();
        }
        self.publish_and_mark(rows).await?;
        Ok(claimed)
    }

    /// The lead lane: passes back to back while they find rows, then a wait for a
    /// notification or the poll interval (or the backoff, while the database fails).
    async fn lead_lane(self, signals: Arc<Signals>, shutdown: Shutdown) {
        let mut failures: u32 = 0;
        let mut last_pass: Option<tokio::time::Instant> = None;
        while !shutdown.is_triggered() {
            // The linger: a pass starts no sooner than `linger` after the one before.
            // After a quiet spell a new row is taken at once; under a steady stream the
            // rows that commit meanwhile travel together, in one produce request per
            // partition leader instead of many.
            if let Some(ready) = last_pass.map(|at| at + self.config.linger) {
                tokio::select! {
                    () = shutdown.wait() => break,
                    () = tokio::time::sleep_until(ready) => {},
                }
            }
            last_pass = Some(tokio::time::Instant::now());
            let wait = match self.lane_pass(&signals).await {
                Ok(claimed) => {
                    failures = 0;
                    if claimed > 0 {
                        continue;
                    }
                    self.config.poll_interval
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, failures, "relay pass failed");
                    lifecycle::backoff(failures, super::DATABASE_BACKOFF_CAP)
                }
            };
            tokio::select! {
                () = shutdown.wait() => break,
                () = tokio::time::sleep(wait) => {},
                // After a failure, the backoff wins over notifications.
                () = signals.new_rows.notified(), if failures == 0 => {},
            }
        }
    }

    /// A helper lane: asleep until a full claim wakes it, then passes while they come
    /// back full. A failure sends it back to sleep; the lead lane keeps the backoff.
    async fn helper_lane(self, lane: usize, signals: Arc<Signals>, shutdown: Shutdown) {
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                () = signals.backlog.notified() => {},
            }
            while !shutdown.is_triggered() {
                match self.lane_pass(&signals).await {
                    Ok(claimed) if claimed as i64 >= self.config.batch_size => {}
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(%error, lane, "relay pass failed");
                        break;
                    }
                }
            }
        }
    }
}
