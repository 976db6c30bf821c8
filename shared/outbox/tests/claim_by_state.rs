//! Why the relay claims rows by state and not with a cursor.
//!
//! `seq` values are handed out at INSERT, but a row becomes visible at COMMIT. A
//! transaction that inserted first and commits last puts a *smaller* seq behind a
//! larger one the reader has already passed. A cursor (`seq > last_seen`) skips it
//! forever; a claim by `state <> 'SENT'` finds it on the next pass.

mod common;

use std::time::Duration;

use outbox::{ClaimStrategy, OutboxMessage};
use serde_json::json;
use sqlx::PgPool;

/// The tempting but wrong reader: everything after the last seq seen.
async fn naive_cursor_read(pool: &PgPool, last_seen: i64) -> Vec<i64> {
    sqlx::query_scalar("SELECT seq FROM outbox WHERE seq > $1 ORDER BY seq")
        .bind(last_seen)
        .fetch_all(pool)
        .await
        .expect("cursor read")
}

async fn slow_seq(tx: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT seq FROM outbox WHERE message_key = 'k1'")
        .fetch_one(tx)
        .await
        .expect("seq of k1")
}

#[tokio::test]
async fn a_cursor_skips_a_row_that_commits_late_and_the_claim_does_not() {
    let (_db, pool) = common::migrated_db().await;

    // The cursor reader runs between T2's commit and T1's commit.
    let mut slow = pool.begin().await.expect("begin slow");
    outbox::enqueue(
        &mut slow,
        &OutboxMessage::new("t", "k1", "TestEvent", json!({"n": 1})),
    )
    .await
    .expect("slow insert");
    let mut fast = pool.begin().await.expect("begin fast");
    outbox::enqueue(
        &mut fast,
        &OutboxMessage::new("t", "k2", "TestEvent", json!({"n": 2})),
    )
    .await
    .expect("fast insert");
    fast.commit().await.expect("fast commit");
    let slow_seq = slow_seq(&mut slow).await;

    let first_read = naive_cursor_read(&pool, 0).await;
    assert_eq!(
        first_read.len(),
        1,
        "only T2's row is visible yet: {first_read:?}"
    );
    let last_seen = first_read[0];
    assert!(
        slow_seq < last_seen,
        "T1 took the smaller seq ({slow_seq} < {last_seen})"
    );

    slow.commit().await.expect("slow commit");
    let second_read = naive_cursor_read(&pool, last_seen).await;
    assert!(
        second_read.is_empty(),
        "the cursor never sees seq {slow_seq}: {second_read:?}"
    );

    // The real claim, by state: both rows, the late one included.
    for strategy in [ClaimStrategy::SkipLocked, ClaimStrategy::OptimisticLock] {
        sqlx::query("UPDATE outbox SET state = 'PENDING', available_at = now()")
            .execute(&pool)
            .await
            .expect("reset");
        let relay = common::relay(&pool, "claimer", strategy, 100, Duration::from_secs(30));
        let claimed: Vec<i64> = relay
            .claim()
            .await
            .expect("claim")
            .iter()
            .map(|r| r.seq)
            .collect();
        assert!(
            claimed.contains(&slow_seq),
            "{strategy:?} claims the late row: {claimed:?}"
        );
        assert_eq!(claimed.len(), 2, "{strategy:?}: {claimed:?}");
    }
}

#[tokio::test]
async fn two_claimers_never_claim_the_same_row() {
    let (_db, pool) = common::migrated_db().await;
    for i in 0..200 {
        common::enqueue(&pool, "t", &format!("key-{i}"), json!({ "i": i })).await;
    }
    for strategy in [ClaimStrategy::SkipLocked, ClaimStrategy::OptimisticLock] {
        sqlx::query("UPDATE outbox SET state = 'PENDING', available_at = now(), claimed_by = NULL")
            .execute(&pool)
            .await
            .expect("reset");
        let a = common::relay(&pool, "relay-a", strategy, 50, Duration::from_secs(30));
        let b = common::relay(&pool, "relay-b", strategy, 50, Duration::from_secs(30));
        let mut seen = std::collections::HashSet::new();
        let mut total = 0;
        loop {
            let (ra, rb) = tokio::join!(a.claim(), b.claim());
            let (ra, rb) = (ra.expect("claim a"), rb.expect("claim b"));
            if ra.is_empty() && rb.is_empty() {
                break;
            }
            for row in ra.iter().chain(rb.iter()) {
                assert!(
                    seen.insert((strategy as u8, row.id)),
                    "{strategy:?} claimed {} twice",
                    row.id
                );
                total += 1;
            }
        }
        assert_eq!(total, 200, "{strategy:?}: every row claimed exactly once");
    }
}

#[tokio::test]
async fn a_keys_next_event_is_claimable_only_after_the_previous_one_is_sent() {
    for strategy in [ClaimStrategy::SkipLocked, ClaimStrategy::OptimisticLock] {
        let (_db, pool) = common::migrated_db().await;
        let topic = test_support::create_unique_topic("key-order", 3, 3).await;
        let first = common::enqueue(&pool, &topic, "k", json!({ "n": 1 })).await;
        let second = common::enqueue(&pool, &topic, "k", json!({ "n": 2 })).await;
        let other = common::enqueue(&pool, &topic, "other", json!({ "n": 1 })).await;

        let a = common::relay(&pool, "relay-a", strategy, 100, Duration::from_secs(30));
        let b = common::relay(&pool, "relay-b", strategy, 100, Duration::from_secs(30));
        let claimed: Vec<_> = a
            .claim()
            .await
            .expect("claim a")
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(
            claimed,
            [first.id, other.id],
            "{strategy:?}: only the head of each key"
        );
        let claimed = b.claim().await.expect("claim b");
        assert!(
            claimed.is_empty(),
            "{strategy:?}: k's second event waits while the first is in flight: {claimed:?}"
        );

        // Once the first is sent (by a relay that takes the expired lease), the second goes.
        sqlx::query("UPDATE outbox SET available_at = now() WHERE state = 'SENDING'")
            .execute(&pool)
            .await
            .expect("expire the lease");
        let report = b.relay_once().await.expect("pass");
        assert_eq!((report.claimed, report.sent), (2, 2), "{strategy:?}");
        let claimed: Vec<_> = a
            .claim()
            .await
            .expect("claim a")
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(claimed, [second.id], "{strategy:?}");
    }
}
