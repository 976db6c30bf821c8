//! Housekeeping beside the passes: deleting `SENT` rows once they are old enough, and
//! sampling the producer's queue.
//!
//! A `SENT` row has done its job; it is kept for a while (`OUTBOX_RETENTION_HOURS`,
//! default 168 = a week) so that "was event X published, where, when?" can be answered
//! from the database, then deleted so the table does not grow forever. Unsent rows
//! (`PENDING`, `SENDING`, `FAILED`) are never touched: deleting one would lose its event.

use std::time::Duration;

use lifecycle::Shutdown;
use rdkafka::producer::{FutureProducer, Producer};
use sqlx::PgPool;

use super::Relay;

/// Rows deleted per statement: each statement is short, holds few locks, and leaves
/// room for the relay's own work between batches.
const PURGE_BATCH: i64 = 10_000;

/// Deletes every `SENT` row whose `sent_at` is older than `retention`, in batches of
/// `PURGE_BATCH` rows (oldest first, by the `outbox_sent_at_idx` index), and returns how
/// many went. [`Relay::run`] calls it every few minutes; tests call it directly.
pub async fn purge_sent_once(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let retention_secs = retention.as_secs_f64();
    let mut deleted = 0;
    loop {
        let batch = sqlx::query!(
            r#"DELETE FROM outbox WHERE id IN (
                   SELECT id FROM outbox
                    WHERE state = 'SENT' AND sent_at < now() - make_interval(secs => $1)
                    ORDER BY sent_at
                    LIMIT $2)"#,
            retention_secs,
            PURGE_BATCH,
        )
        .execute(pool)
        .await?
        .rows_affected();
        deleted += batch;
        if batch < PURGE_BATCH as u64 {
            return Ok(deleted);
        }
    }
}

impl Relay {
    /// Deletes `SENT` rows past the retention every `purge_interval`.
    pub(super) async fn housekeeping(self, shutdown: Shutdown) {
        lifecycle::every(self.config.purge_interval, &shutdown, || self.purge()).await;
    }

    /// One housekeeping step: delete `SENT` rows past the retention.
    /// Cheap (an index range scan, bounded batches); a failure waits for the next step.
    async fn purge(&self) {
        match purge_sent_once(&self.pool, self.config.retention).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "purged SENT outbox rows past retention"),
            Err(error) => tracing::warn!(%error, "outbox purge failed; next step retries"),
        }
    }
}

/// Samples the producer's queue every second until shutdown, beside the passes or the
/// stream: it shows the messages still waiting for their acks (a slow or failing-over
/// broker).
pub(super) async fn sample_producer_queue(
    producer: FutureProducer,
    gauge: ::metrics::Gauge,
    shutdown: Shutdown,
) {
    lifecycle::every(Duration::from_secs(1), &shutdown, || async {
        gauge.set(f64::from(producer.in_flight_count()));
    })
    .await;
}
