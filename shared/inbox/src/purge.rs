//! Dedup retention: how long the inbox remembers a message id.
//!
//! A row can be forgotten once no copy of its message can arrive any more. Copies come
//! from the topic itself (a rebalance, a crash after the effect, a replay from an old
//! offset), so the retention must be at least the topic's `retention.ms`: a duplicate
//! read after its dedup record was purged would be applied a second time (payment-service
//! warns at start-up when it is shorter; docs/en/06-idempotency.md).

use std::time::Duration;

use sqlx::PgPool;

/// Deletes `consumer_group`'s inbox rows received more than `retention` ago and returns
/// how many went. Other groups' rows are theirs to purge.
pub async fn purge_older_than(
    pool: &PgPool,
    consumer_group: &str,
    retention: Duration,
) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query(
        "DELETE FROM inbox
         WHERE consumer_group = $1 AND received_at < now() - make_interval(secs => $2)",
    )
    .bind(consumer_group)
    .bind(retention.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected())
}
