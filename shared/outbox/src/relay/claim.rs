//! Claiming outbox rows: move them to `SENDING` with a lease, so that no two relays
//! publish the same row at the same time and a crashed relay's rows come back.
//!
//! Rows are chosen by *state* (`PENDING`, or `SENDING` whose lease ran out), in `seq`
//! order, never by a cursor such as `seq > last_seen`: sequence numbers are taken at
//! insert time but rows become visible at commit time, so a row with a smaller `seq` can
//! appear after a larger one was already seen, and a cursor would skip it for good.
//!
//! Per-key order: a row is claimable only when no earlier row with the same key is
//! still unsent. Each key's events therefore go out one after another, even with
//! several relays, while different keys go out in parallel. The streaming relay leans
//! on it too: a row in flight (claimed, sent, ack not yet marked) is still `SENDING`,
//! so its key's next row waits until the ack is marked, and a key never has two rows
//! in flight, in one relay or across several.
//!
//! `FAILED` rows (sends that failed `RELAY_MAX_ATTEMPTS` times, see `mark.rs`) are never
//! claimed, but they still count as unsent in the per-key check: **a FAILED row blocks
//! the later events of its key**. That is deliberate. Publishing an order's later events
//! without the earlier one would hand consumers a history out of order (a payment for an
//! order they never saw created), which is worse than a delay. It is not silent: the
//! give-up logs an error naming the key, the row shows `state = 'FAILED'` with its
//! `last_error`, and `outbox::retry_failed` lets an operator release it once the cause
//! (a missing topic, say) is fixed.

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::RelayConfig;

/// How rows are claimed; both give the same guarantees (docs/en/02-produce.md compares
/// their throughput).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimStrategy {
    /// `SELECT ... FOR UPDATE SKIP LOCKED` then `UPDATE` in one statement: relays never
    /// wait for each other and never collide.
    SkipLocked,
    /// The study note's scheme: read candidates without locks, then
    /// `UPDATE ... WHERE version = <read version>` per row; a relay that loses the race
    /// updates zero rows and moves on.
    OptimisticLock,
}

impl std::str::FromStr for ClaimStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "skip-locked" => Ok(Self::SkipLocked),
            "optimistic-lock" => Ok(Self::OptimisticLock),
            other => Err(format!(
                "{other:?}: expected skip-locked or optimistic-lock"
            )),
        }
    }
}

/// A claimed row: what the relay needs to publish and then mark it.
#[derive(Debug, Clone)]
pub struct ClaimedRow {
    pub id: Uuid,
    pub seq: i64,
    pub topic: String,
    pub message_key: String,
    pub event_type: String,
    pub payload: Value,
    pub headers: Value,
    pub attempts: i32,
    /// The version after our claim; mark-sent requires it to be unchanged.
    pub version: i64,
    /// The W3C trace context `enqueue` stored (NULL outside a trace): the relay's
    /// `send` span continues that trace.
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

/// Claims up to `limit` rows (the wave's batch, or the streaming relay's free room in
/// flight), oldest first, and returns them in `seq` order.
pub(super) async fn claim(
    pool: &PgPool,
    config: &RelayConfig,
    limit: i64,
) -> Result<Vec<ClaimedRow>, sqlx::Error> {
    let lease_secs = config.lease.as_secs_f64();
    let mut rows = match config.strategy {
        ClaimStrategy::SkipLocked => {
            sqlx::query_as!(
                ClaimedRow,
                r#"WITH pending AS (
                       -- Rows waiting for a send, oldest first (`outbox_pending_idx`):
                       -- the rows in flight are SENDING, so this index does not hold
                       -- them and a claim never walks past them.
                       SELECT p.id, p.seq FROM outbox p
                       WHERE p.state = 'PENDING' AND p.available_at <= now()
                         -- FAILED counts as unsent here: it holds its key back.
                         AND NOT EXISTS (SELECT 1 FROM outbox e
                                         WHERE e.message_key = p.message_key
                                           AND e.state <> 'SENT' AND e.seq < p.seq)
                       ORDER BY p.seq
                       LIMIT $1
                       FOR UPDATE SKIP LOCKED),
                   expired AS (
                       -- Claims whose lease ran out (`outbox_lease_idx`): a relay died
                       -- holding them (crash points R1, R2, R3).
                       SELECT s.id, s.seq FROM outbox s
                       WHERE s.state = 'SENDING' AND s.available_at <= now()
                         AND NOT EXISTS (SELECT 1 FROM outbox e
                                         WHERE e.message_key = s.message_key
                                           AND e.state <> 'SENT' AND e.seq < s.seq)
                       ORDER BY s.available_at
                       LIMIT $1
                       FOR UPDATE SKIP LOCKED),
                   -- The oldest of both lists. A row locked here and not taken stays
                   -- as it was, unlocked when this statement commits.
                   next AS (
                       SELECT c.id FROM (SELECT * FROM pending UNION ALL SELECT * FROM expired) c
                       ORDER BY c.seq
                       LIMIT $1)
                   UPDATE outbox o
                      SET state = 'SENDING', claimed_by = $2, attempts = o.attempts + 1,
                          version = o.version + 1,
                          available_at = now() + make_interval(secs => $3)
                     FROM next WHERE o.id = next.id
                   RETURNING o.id, o.seq, o.topic, o.message_key, o.event_type, o.payload,
                             o.headers, o.attempts, o.version, o.traceparent, o.tracestate"#,
                limit,
                config.relay_id,
                lease_secs,
            )
            .fetch_all(pool)
            .await?
        }
        ClaimStrategy::OptimisticLock => claim_optimistic(pool, config, limit, lease_secs).await?,
    };
    rows.sort_by_key(|r| r.seq);
    Ok(rows)
}

async fn claim_optimistic(
    pool: &PgPool,
    config: &RelayConfig,
    limit: i64,
    lease_secs: f64,
) -> Result<Vec<ClaimedRow>, sqlx::Error> {
    // The same two lists as the SKIP LOCKED claim, read without locks.
    let candidates = sqlx::query!(
        r#"SELECT c.id AS "id!", c.version AS "version!" FROM (
               (SELECT p.id, p.version, p.seq FROM outbox p
                 WHERE p.state = 'PENDING' AND p.available_at <= now()
                   AND NOT EXISTS (SELECT 1 FROM outbox e
                                   WHERE e.message_key = p.message_key
                                     AND e.state <> 'SENT' AND e.seq < p.seq)
                 ORDER BY p.seq
                 LIMIT $1)
               UNION ALL
               (SELECT s.id, s.version, s.seq FROM outbox s
                 WHERE s.state = 'SENDING' AND s.available_at <= now()
                   AND NOT EXISTS (SELECT 1 FROM outbox e
                                   WHERE e.message_key = s.message_key
                                     AND e.state <> 'SENT' AND e.seq < s.seq)
                 ORDER BY s.available_at
                 LIMIT $1)) c
           ORDER BY c.seq
           LIMIT $1"#,
        limit,
    )
    .fetch_all(pool)
    .await?;
    let mut claimed = Vec::with_capacity(candidates.len());
    for c in candidates {
        // The conditional update is the lock: it succeeds only if nobody changed the row
        // since we read it. Zero rows means another relay won; skip it.
        let row = sqlx::query_as!(
            ClaimedRow,
            r#"UPDATE outbox
                  SET state = 'SENDING', claimed_by = $3, attempts = attempts + 1,
                      version = version + 1,
                      available_at = now() + make_interval(secs => $4)
                WHERE id = $1 AND version = $2 AND state IN ('PENDING', 'SENDING')
                  AND available_at <= now()
               RETURNING id, seq, topic, message_key, event_type, payload, headers,
                         attempts, version, traceparent, tracestate"#,
            c.id,
            c.version,
            config.relay_id,
            lease_secs,
        )
        .fetch_optional(pool)
        .await?;
        claimed.extend(row);
    }
    Ok(claimed)
}
