//! The rows the relay gave up on (`FAILED`), and the operator's way back.
//!
//! A row becomes `FAILED` after `RELAY_MAX_ATTEMPTS` sends that failed for a permanent
//! reason (no such topic, record too large, not authorized: `relay/mark.rs`); a broker
//! outage never makes one. It holds back the later events of its key
//! (`relay/claim.rs`), so it must be looked at: find it with [`failed_rows`] (or
//! `make outbox-retry`, the `outbox-admin` binary), fix the cause, then put it back with
//! [`put_back_failed`]: one row, a key's, or all.

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

/// Which `FAILED` rows to put back.
#[derive(Debug, Clone, Copy)]
pub enum FailedRows<'a> {
    /// One row, by its event id.
    One(Uuid),
    /// Every FAILED row of one message key (an order's events).
    Key(&'a str),
    /// Every FAILED row.
    All,
}

/// Puts `FAILED` rows back to `PENDING`, claimable now, with their attempts reset (each
/// gets `RELAY_MAX_ATTEMPTS` fresh tries); the later events of their keys follow once
/// they are sent. Returns how many rows went back. An operator's tool: run it after
/// fixing what made the sends fail.
pub async fn put_back_failed(pool: &PgPool, which: FailedRows<'_>) -> Result<u64, sqlx::Error> {
    let (id, key) = match which {
        FailedRows::One(id) => (Some(id), None),
        FailedRows::Key(key) => (None, Some(key)),
        FailedRows::All => (None, None),
    };
    let updated = sqlx::query!(
        r#"UPDATE outbox
              SET state = 'PENDING', attempts = 0, version = version + 1,
                  available_at = now(), claimed_by = NULL
            WHERE state = 'FAILED'
              AND ($1::uuid IS NULL OR id = $1)
              AND ($2::text IS NULL OR message_key = $2)"#,
        id,
        key,
    )
    .execute(pool)
    .await?;
    Ok(updated.rows_affected())
}

/// Puts one `FAILED` row back ([`put_back_failed`]). Returns false when `event_id` is
/// not a `FAILED` row (unknown, or already released).
pub async fn retry_failed(pool: &PgPool, event_id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(put_back_failed(pool, FailedRows::One(event_id)).await? == 1)
}
