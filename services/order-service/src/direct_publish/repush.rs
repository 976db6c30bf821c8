//! The re-push job: sends again every event of the send log whose last line is not
//! `acked` (study note: "on failure, re-push from the log").
//!
//! A re-pushed event keeps its `event-id`, so when the first send did reach the broker
//! after all (its ack was lost, or its request died between send and `acked` line) the
//! copy is a duplicate the consumer's inbox skips — never a second payment.
//!
//! Bounded, so a long outage cannot fill the disk: a pass sends at most
//! [`REPUSH_MAX_PER_PASS`] events, writes an `acked` line for each one acknowledged and
//! **nothing** for a failed one (its `pending` or `failed` line already says "send it
//! again"), and compacts the log once [`COMPACT_AFTER_SETTLED`] events are settled.

use std::time::Duration;

use futures::future::join_all;
use lifecycle::Shutdown;

use super::send_log::{SendLogError, settled_count};
use super::{DirectPublisher, RETRY_AFTER};

/// At most this many events are sent per pass, the oldest first: a backlog after an
/// outage drains over several passes instead of one burst of sends.
pub const REPUSH_MAX_PER_PASS: usize = 500;
/// A pass compacts the log (drops settled events) once it holds this many.
pub const COMPACT_AFTER_SETTLED: usize = 1_000;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepushReport {
    /// Events found unsettled (last line `failed`, or `pending` older than the grace).
    pub due: usize,
    pub acked: usize,
    pub failed: usize,
    /// Due events left for the next pass ([`REPUSH_MAX_PER_PASS`]).
    pub deferred: usize,
    /// Lines the pass's compaction dropped (0: no compaction).
    pub compacted_lines: usize,
}

/// One pass: up to `REPUSH_MAX_PER_PASS` due events are sent again; an ack is logged,
/// a failure is not (see the module doc); then the log is compacted if it holds
/// `compact_after_settled` settled events.
pub(super) async fn repush_once(
    publisher: &DirectPublisher,
    in_flight_grace: Duration,
    compact_after_settled: usize,
) -> Result<RepushReport, SendLogError> {
    let log = publisher.send_log();
    let lines = log.read_all().await?;
    let settled = settled_count(&lines);
    let mut due = super::send_log::unsettled_at(lines, in_flight_grace);
    let mut report = RepushReport {
        due: due.len(),
        deferred: due.len().saturating_sub(REPUSH_MAX_PER_PASS),
        ..RepushReport::default()
    };
    due.truncate(REPUSH_MAX_PER_PASS);
    if settled >= compact_after_settled {
        report.compacted_lines = log.compact().await?.dropped_lines;
    }
    if due.is_empty() {
        return Ok(report);
    }
    // Concurrent sends: each order has one event (OrderCreated), so there is no per-key
    // order between these to keep.
    let outcomes = join_all(due.iter().map(|u| publisher.resend(u.event_id, &u.event))).await;
    for (unsettled, outcome) in due.iter().zip(outcomes) {
        match outcome {
            Ok(delivered) => {
                tracing::info!(event_id = %unsettled.event_id, partition = delivered.partition, offset = delivered.offset, "re-pushed");
                report.acked += 1;
            }
            Err(error) => {
                tracing::warn!(event_id = %unsettled.event_id, %error, "re-push failed; next pass retries");
                report.failed += 1;
            }
        }
    }
    Ok(report)
}

/// Passes every `RETRY_AFTER` until shutdown. The first pass runs at once: it sends
/// what a previous process left unsettled.
pub(super) async fn run(publisher: &DirectPublisher, shutdown: Shutdown) {
    lifecycle::every(RETRY_AFTER, &shutdown, || async {
        match publisher.repush_once().await {
            Ok(report) if report.due > 0 => tracing::info!(?report, "re-push pass"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "re-push pass could not read the send log"),
        }
    })
    .await;
}
