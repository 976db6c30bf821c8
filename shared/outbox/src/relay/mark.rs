//! Recording the outcome of a send on the row.

use std::time::Duration;

use rdkafka::producer::future_producer::Delivery;
use sqlx::PgPool;

use super::ClaimedRow;
use super::publish::SendFailure;

/// `SENDING` → `SENT` for every acked row of a pass (or, streaming, for every ack that
/// arrived since the last mark), with where the broker put each,
/// in **one** statement: one round trip for the whole batch instead of one per row
/// (the benchmark found the per-row updates were more than half of a pass,
/// docs/en/08-load-and-benchmark.md). Each row is guarded by the version we claimed: if
/// the lease ran out and another relay re-claimed a row, it owns the row now (and has
/// re-sent it: a duplicate the consumer's dedup absorbs). Returns how many were marked.
pub(super) async fn mark_sent(
    pool: &PgPool,
    acked: &[(&ClaimedRow, &Delivery)],
    relay_id: &str,
) -> Result<usize, sqlx::Error> {
    if acked.is_empty() {
        return Ok(0);
    }
    let ids: Vec<uuid::Uuid> = acked.iter().map(|(row, _)| row.id).collect();
    let versions: Vec<i64> = acked.iter().map(|(row, _)| row.version).collect();
    let partitions: Vec<i32> = acked.iter().map(|(_, d)| d.partition).collect();
    let offsets: Vec<i64> = acked.iter().map(|(_, d)| d.offset).collect();
    let marked = sqlx::query_scalar!(
        r#"UPDATE outbox AS o
              SET state = 'SENT', sent_at = now(), kafka_partition = d.kafka_partition,
                  kafka_offset = d.kafka_offset, last_error = NULL
             FROM unnest($1::uuid[], $2::bigint[], $3::int[], $4::bigint[])
                  AS d(id, version, kafka_partition, kafka_offset)
            WHERE o.id = d.id AND o.version = d.version
        RETURNING o.id"#,
        &ids,
        &versions,
        &partitions,
        &offsets,
    )
    .fetch_all(pool)
    .await?;
    if marked.len() < acked.len() {
        for (row, _) in acked.iter().filter(|(row, _)| !marked.contains(&row.id)) {
            tracing::warn!(event_id = %row.id, relay = relay_id, "lease lost before mark-sent; another relay owns the row");
        }
    }
    Ok(marked.len())
}

/// What became of a row whose send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Released {
    /// Back to `PENDING`, claimable again after a backoff.
    ForRetry,
    /// `FAILED`: a permanent failure, attempts used up; only an operator brings it back.
    GaveUp,
    /// Our claim was gone (lease lost); the row belongs to another relay.
    LeaseLost,
}

/// After a failed send, decides the row's fate.
///
/// - A **transient** failure (the broker down or slow, see [`SendFailure`]) is never
///   given up: `SENDING` → `PENDING`, claimable again after a backoff that doubles with
///   each attempt and is capped at 30 s. An outage of any length therefore ends with
///   every row sent, with no operator. (Before, every failure counted toward
///   `RELAY_MAX_ATTEMPTS`: a Kafka outage of about 15 minutes turned every row accepted
///   during it `FAILED`, and its orders stayed unpaid after Kafka came back.)
/// - A **permanent** failure (no such topic, record too large, not authorized) is
///   retried the same way while the row has attempts left, in case the cause is fixed
///   meanwhile (a topic being created), and then given up: `FAILED`, never `SENT`, and a
///   loud error naming its key, because every later event of that key now waits
///   behind it (see `claim.rs`). `attempts` counts claims, transient ones included.
pub(super) async fn release_for_retry(
    pool: &PgPool,
    row: &ClaimedRow,
    failure: &SendFailure,
    max_attempts: i32,
) -> Result<Released, sqlx::Error> {
    let error = failure.reason.as_str();
    if failure.permanent && row.attempts >= max_attempts {
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
            "outbox row FAILED (a permanent error, after its last attempt): later events of \
             key {:?} are held back until an operator puts it back (make outbox-retry)",
            row.message_key,
        );
        return Ok(Released::GaveUp);
    }
    // Spaced out by the row's own attempts, so a row failing for a long time is tried
    // less and less often, at most every 30 s.
    let attempts = u32::try_from(row.attempts).unwrap_or(0);
    let backoff = lifecycle::backoff(attempts, SEND_RETRY_CAP).as_secs_f64();
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

/// The longest a failed row waits before its next claim.
const SEND_RETRY_CAP: Duration = Duration::from_secs(30);
