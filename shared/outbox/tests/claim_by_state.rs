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

/// The same interleaving through the real relay, against the topic: a pass publishes
/// T2's row while T1 is still open; T1 commits (its row has the smaller seq); the next
/// pass publishes T1's row too. A cursor relay at that point ("everything after the
/// highest seq published") finds nothing: it would have lost T1's event, counted here.
#[tokio::test]
async fn the_relay_publishes_a_row_that_commits_after_a_later_one_was_sent() {
    let (_db, pool) = common::migrated_db().await;
    let topic = test_support::create_unique_topic("late-commit", 1, 3).await;
    let relay = common::relay(
        &pool,
        "relay",
        ClaimStrategy::SkipLocked,
        100,
        Duration::from_secs(30),
    );

    let mut slow = pool.begin().await.expect("begin slow");
    let late = OutboxMessage::new(&topic, "k1", "TestEvent", json!({"n": 1}));
    outbox::enqueue(&mut slow, &late)
        .await
        .expect("slow insert");
    let early = common::enqueue(&pool, &topic, "k2", json!({"n": 2})).await;

    let first = relay.relay_once().await.expect("first pass");
    assert_eq!(
        (first.claimed, first.sent),
        (1, 1),
        "only T2's row is visible: {first:?}"
    );
    let cursor: i64 = sqlx::query_scalar("SELECT max(seq) FROM outbox WHERE state = 'SENT'")
        .fetch_one(&pool)
        .await
        .expect("highest seq published");
    slow.commit().await.expect("slow commit");

    let second = relay.relay_once().await.expect("second pass");
    assert_eq!(
        (second.claimed, second.sent),
        (1, 1),
        "T1's row, late: {second:?}"
    );
    let on_topic: std::collections::HashSet<String> = common::read_topic(&topic)
        .await
        .into_iter()
        .map(|r| r.event_id)
        .collect();
    let expected: std::collections::HashSet<String> =
        [late.id.to_string(), early.id.to_string()].into();
    assert_eq!(
        on_topic, expected,
        "both events published, the late one included"
    );

    // What a cursor relay would have found after its first pass: nothing, for good.
    let by_cursor = naive_cursor_read(&pool, cursor).await;
    let lost_by_cursor = 2 - 1 - by_cursor.len();
    eprintln!(
        "late commit: the relay published 2 of 2; a cursor relay 1 of 2 (lost {lost_by_cursor})"
    );
    assert_eq!(
        lost_by_cursor, 1,
        "the cursor skips T1's row: {by_cursor:?}"
    );
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
