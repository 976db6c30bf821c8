//! The rows the relay gave up on (`FAILED`), and the operator's way back.
//!
//! A row becomes `FAILED` after `RELAY_MAX_ATTEMPTS` failed sends (`relay/mark.rs`). It
//! holds back the later events of its key (`relay/claim.rs`), so it must be looked at:
//! find it with [`failed_rows`] (or `SELECT ... WHERE state = 'FAILED'`), fix the cause,
//! then [`retry_failed`].

use sqlx::PgPool;
use uuid::Uuid;

/// A row the relay gave up on, with why.
#[derive(Debug, Clone)]
pub struct FailedRow {
    pub id: Uuid,
    pub topic: String,
    pub message_key: String,
    pub event_type: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// Every `FAILED` row, oldest first.
pub async fn failed_rows(pool: &PgPool) -> Result<Vec<FailedRow>, sqlx::Error> {
    sqlx::query_as!(
        FailedRow,
        r#"SELECT id, topic, message_key, event_type, attempts, last_error
             FROM outbox WHERE state = 'FAILED' ORDER BY seq"#
    )
    .fetch_all(pool)
    .await
}

/// Puts a `FAILED` row back to `PENDING`, claimable now, with its attempts reset (it
/// gets `RELAY_MAX_ATTEMPTS` fresh tries); the later events of its key follow it once it
/// is sent. Returns false when `event_id` is not a `FAILED` row (unknown, or already
/// released). An operator's tool: run it after fixing what made the sends fail.
pub async fn retry_failed(pool: &PgPool, event_id: Uuid) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query!(
        r#"UPDATE outbox
              SET state = 'PENDING', attempts = 0, version = version + 1,
                  available_at = now(), claimed_by = NULL
            WHERE id = $1 AND state = 'FAILED'"#,
        event_id,
    )
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}
