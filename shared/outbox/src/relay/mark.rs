//! Recording the outcome of a send on the row.

use std::time::Duration;

use rdkafka::producer::future_producer::Delivery;
use sqlx::PgPool;

use super::ClaimedRow;

/// `SENDING` → `SENT`, with where the broker put it. Guarded by the version we claimed:
/// if the lease ran out and another relay re-claimed the row, it owns the row now (and
/// has re-sent it: a duplicate the consumer's dedup absorbs).
pub(super) async fn mark_sent(
    pool: &PgPool,
    row: &ClaimedRow,
    relay_id: &str,
    delivery: Delivery,
) -> Result<(), sqlx::Error> {
    let updated = sqlx::query!(
        r#"UPDATE outbox
              SET state = 'SENT', sent_at = now(), kafka_partition = $3, kafka_offset = $4,
                  last_error = NULL
            WHERE id = $1 AND version = $2"#,
        row.id,
        row.version,
        delivery.partition,
        delivery.offset,
    )
    .execute(pool)
    .await?;
    if updated.rows_affected() == 0 {
        tracing::warn!(event_id = %row.id, relay = relay_id, "lease lost before mark-sent; another relay owns the row");
    }
    Ok(())
}

/// `SENDING` → `PENDING` after a failed send, claimable again after a backoff that
/// doubles with each attempt (capped at 30 s).
pub(super) async fn release_for_retry(
    pool: &PgPool,
    row: &ClaimedRow,
    error: &str,
) -> Result<(), sqlx::Error> {
    let backoff = retry_backoff(row.attempts).as_secs_f64();
    sqlx::query!(
        r#"UPDATE outbox
              SET state = 'PENDING', last_error = $3,
                  available_at = now() + make_interval(secs => $4)
            WHERE id = $1 AND version = $2"#,
        row.id,
        row.version,
        error,
        backoff,
    )
    .execute(pool)
    .await?;
    Ok(())
}

fn retry_backoff(attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 9)).unwrap_or(0);
    Duration::from_millis(100 * (1u64 << exp)).min(Duration::from_secs(30))
}
