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

/// What became of a row whose send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Released {
    /// Back to `PENDING`, claimable again after a backoff.
    ForRetry,
    /// `FAILED`: it had used up its attempts; only an operator brings it back.
    GaveUp,
    /// Our claim was gone (lease lost); the row belongs to another relay.
    LeaseLost,
}

/// After a failed send, decides the row's fate. `attempts` counts claims (the claim
/// bumps it), so a row claimed `max_attempts` times and failing now is given up:
/// `FAILED`, never `SENT`, and a loud error naming its key, because every later event
/// of that key now waits behind it (see `claim.rs`). Otherwise `SENDING` → `PENDING`,
/// claimable again after a backoff that doubles with each attempt (capped at 30 s).
pub(super) async fn release_for_retry(
    pool: &PgPool,
    row: &ClaimedRow,
    error: &str,
    max_attempts: i32,
) -> Result<Released, sqlx::Error> {
    if row.attempts >= max_attempts {
        let updated = sqlx::query!(
            r#"UPDATE outbox SET state = 'FAILED', last_error = $3
                WHERE id = $1 AND version = $2"#,
            row.id,
            row.version,
            error,
        )
        .execute(pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(Released::LeaseLost);
        }
        tracing::error!(
            event_id = %row.id,
            key = %row.message_key,
            topic = %row.topic,
            attempts = row.attempts,
            %error,
            "outbox row FAILED after its last attempt: later events of key {:?} are held \
             back until an operator runs outbox::retry_failed",
            row.message_key,
        );
        return Ok(Released::GaveUp);
    }
    let backoff = retry_backoff(row.attempts).as_secs_f64();
    let updated = sqlx::query!(
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
    Ok(if updated.rows_affected() == 0 {
        Released::LeaseLost
    } else {
        Released::ForRetry
    })
}

fn retry_backoff(attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 9)).unwrap_or(0);
    Duration::from_millis(100 * (1u64 << exp)).min(Duration::from_secs(30))
}
