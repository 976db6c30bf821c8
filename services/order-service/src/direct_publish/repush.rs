//! The re-push job: sends again every event of the send log whose last line is not
//! `acked` (study note: "on failure, re-push from the log").
//!
//! A re-pushed event keeps its `event-id`, so when the first send did reach the broker
//! after all (its ack was lost, or its request died between send and `acked` line) the
//! copy is a duplicate the consumer's inbox skips — never a second payment.

use std::time::Duration;

use futures::future::join_all;
use service_runtime::Shutdown;

use super::send_log::SendLogError;
use super::{DirectPublisher, RETRY_AFTER};

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepushReport {
    /// Events found unsettled (last line `failed`, or `pending` older than the grace).
    pub due: usize,
    pub acked: usize,
    pub failed: usize,
}

/// One pass: every due event is sent again through `DirectPublisher::publish`, which
/// logs a fresh `pending` and its outcome, so the log stays the single record.
pub(super) async fn repush_once(
    publisher: &DirectPublisher,
    in_flight_grace: Duration,
) -> Result<RepushReport, SendLogError> {
    let due = publisher.send_log().unsettled(in_flight_grace).await?;
    let mut report = RepushReport {
        due: due.len(),
        ..RepushReport::default()
    };
    if due.is_empty() {
        return Ok(report);
    }
    // Concurrent sends: each order has one event (OrderCreated), so there is no per-key
    // order between these to keep.
    let outcomes = join_all(due.iter().map(|u| publisher.publish(u.event_id, &u.event))).await;
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
    while !shutdown.is_triggered() {
        match publisher.repush_once().await {
            Ok(report) if report.due > 0 => tracing::info!(?report, "re-push pass"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "re-push pass could not read the send log"),
        }
        tokio::select! {
            () = shutdown.wait() => break,
            () = tokio::time::sleep(RETRY_AFTER) => {},
        }
    }
}
