//! One pass of the wave relay, step by step: claim a batch, publish it, wait for every
//! ack, mark what was acked `SENT`, release what failed. Tests and drills call the steps
//! one at a time to stop a relay between them (crash points R1, R2).

use super::{ClaimedRow, Relay, RelayError, RelayReport, claim, mark, publish};

impl Relay {
    /// Only the first step of a pass: claim a batch (state `SENDING`, leased to this
    /// relay) and return it. A relay that stops here is a relay that crashed at R1;
    /// tests and drills use it to leave rows claimed.
    pub async fn claim(&self) -> Result<Vec<ClaimedRow>, RelayError> {
        Ok(claim::claim(&self.pool, &self.config, self.config.batch_size).await?)
    }

    /// One pass: claim a batch, publish it, wait for every ack, mark what was acked.
    pub async fn relay_once(&self) -> Result<RelayReport, RelayError> {
        let rows = self.claim().await?;
        self.publish_and_mark(rows).await
    }

    /// The rest of a pass, after the claim: publish, await the acks, mark. Tests call it
    /// on rows claimed long before, to play a relay slower than its lease.
    pub async fn publish_and_mark(&self, rows: Vec<ClaimedRow>) -> Result<RelayReport, RelayError> {
        if rows.is_empty() {
            return Ok(RelayReport::default());
        }
        // Crash point R1: claimed, nothing sent. The lease brings the rows back.
        lifecycle::CrashPoint::R1.reached();
        let results = publish::publish_all(&self.producer, &rows, &self.metrics).await;
        // Crash point R2: sent and acknowledged, not yet marked. The rows will be
        // sent again after the lease: a duplicate on the topic, never a loss.
        lifecycle::CrashPoint::R2.reached();
        let mut report = RelayReport {
            claimed: rows.len(),
            ..RelayReport::default()
        };
        let mut acked = Vec::with_capacity(rows.len());
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(delivery) => acked.push((row, delivery)),
                Err(error) => match self.release_failed(row, &error).await? {
                    mark::Released::GaveUp => report.gave_up += 1,
                    _ => report.failed += 1,
                },
            }
        }
        // Mark sent only after the broker acked: a crash before this line re-sends,
        // never loses (docs/en/02-produce.md). One statement for the whole batch.
        let acked: Vec<_> = acked.iter().map(|(row, d)| (*row, d)).collect();
        mark::mark_sent(&self.pool, &acked, &self.config.relay_id).await?;
        self.metrics.published.increment(acked.len() as u64);
        report.sent = acked.len();
        Ok(report)
    }

    /// A failed send: back to `PENDING` for a retry, or `FAILED` when it can never
    /// succeed (the policy is `mark::release_for_retry`'s), counted either way.
    pub(super) async fn release_failed(
        &self,
        row: &ClaimedRow,
        failure: &publish::SendFailure,
    ) -> Result<mark::Released, sqlx::Error> {
        let error = &failure.reason;
        let released =
            mark::release_for_retry(&self.pool, row, failure, self.config.max_attempts).await?;
        match released {
            // Logged in mark.rs; counted here: a FAILED row is a message that will not
            // reach Kafka until an operator acts.
            mark::Released::GaveUp => self.metrics.failures.increment(1),
            mark::Released::ForRetry | mark::Released::LeaseLost => {
                if released == mark::Released::ForRetry {
                    self.metrics.retries.increment(1);
                }
                tracing::warn!(event_id = %row.id, attempts = row.attempts, %error, ?released, "publish failed; will retry");
            }
        }
        Ok(released)
    }
}
