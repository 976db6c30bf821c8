//! Consuming in parallel without losing order (docs/en/04-consume.md): messages of
//! different keys run at once, a key's messages run in order even through retries, a
//! partition's stored offset never passes an unfinished message, and a revoke waits for
//! the messages in flight of the partitions it takes away.

use std::time::Duration;

use test_support::eventually;

use crate::inbox_recorder::{deliveries_by_member, install, start_member, tally, wait_all_applied};
use crate::support::Fixture;

/// `seq` of event `i` of key `k`: the key's events are ordered by it.
fn seq(k: i64, i: i64) -> i64 {
    k * 1000 + i
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_messages_are_applied_in_order_through_retries_while_other_keys_go_on() {
    // Four keys, ten events each, interleaved on one partition: the most a plain
    // parallel loop could reorder.
    let fx = Fixture::new().await;
    let (keys, per_key) = (4, 10);
    // Key 0's third event fails transiently five times: its key must wait for it.
    fx.plan_failures(seq(0, 2), 5).await;
    for i in 0..per_key {
        for k in 0..keys {
            fx.publish_with_key(&format!("key-{k}"), seq(k, i), 1).await;
        }
    }
    let member = fx.start(fx.recorder());
    eventually("every event applied", || async {
        let applied = fx.applied_seqs().await;
        if applied.len() >= (keys * per_key) as usize {
            Ok(())
        } else {
            Err(applied.len())
        }
    })
    .await;
    member.stop().await;

    let applied = fx.applied_seqs().await;
    for k in 0..keys {
        let of_key: Vec<i64> = applied.iter().copied().filter(|s| s / 1000 == k).collect();
        let in_order: Vec<i64> = (0..per_key).map(|i| seq(k, i)).collect();
        assert_eq!(
            of_key, in_order,
            "key {k}'s events applied once each, in the order published; all: {applied:?}"
        );
    }
    // While key 0 waited for its retries, the other keys went on: some of their later
    // events were applied before key 0's failing one.
    let failing_at = applied
        .iter()
        .position(|s| *s == seq(0, 2))
        .expect("key 0's third event applied");
    let overtaken = applied[..failing_at]
        .iter()
        .filter(|s| **s / 1000 != 0 && **s % 1000 > 2)
        .count();
    assert!(
        overtaken > 0,
        "no event of another key was applied while key 0 retried: {applied:?}"
    );
    assert!(
        fx.attempts(seq(0, 2)).await >= 6,
        "5 failures, then success"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stored_offset_stays_before_an_unfinished_message_so_it_comes_again() {
    let fx = Fixture::new().await;
    // The first message (its own key) keeps failing; the nine after it (other keys)
    // finish. The partition's stored offset must not move past the first.
    fx.plan_failures(0, 1_000_000).await;
    fx.publish_with_key("slow", 0, 1).await;
    for s in 1..10 {
        fx.publish_with_key(&format!("fast-{s}"), s, 1).await;
    }
    let first = fx.start(fx.recorder());
    eventually("the nine fast messages applied", || async {
        let applied = fx.applied_seqs().await;
        if applied.len() >= 9 {
            Ok(())
        } else {
            Err(applied)
        }
    })
    .await;
    // The member stops with message 0 unfinished: what it leaves committed is exactly
    // what a crash would leave, the stored offsets.
    first.stop().await;
    let mut applied = fx.applied_seqs().await;
    applied.sort_unstable();
    assert_eq!(
        applied,
        (1..10).collect::<Vec<_>>(),
        "0 unfinished, 1-9 applied"
    );

    // "The database is back": the next member must get message 0 again (and, after it,
    // the nine finished ones: the stored offset stays at the first gap).
    fx.plan_failures(0, 0).await;
    let second = fx.start(fx.recorder());
    eventually("message 0 applied by the next member", || async {
        let applied = fx.applied_seqs().await;
        if applied.contains(&0) && applied.len() >= 19 {
            Ok(())
        } else {
            Err(applied)
        }
    })
    .await;
    second.stop().await;
    let applied = fx.applied_seqs().await;
    assert_eq!(
        applied.iter().filter(|s| **s == 0).count(),
        1,
        "message 0 came again and was applied once: {applied:?}"
    );
    assert!(
        (1..10).all(|s| applied.iter().filter(|a| **a == s).count() == 2),
        "the finished messages after the gap were delivered again (the inbox's job in a service): {applied:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_waits_for_the_messages_in_flight_and_hands_over_their_offsets() {
    // At 16 handlers of 400 ms, A alone takes 18 s: B joins well before the end.
    const MESSAGES: i64 = 720;
    let fx = Fixture::with_partitions(6).await;
    install(&fx.pool).await;
    // Two messages per key, one after the other in their partition: the second waits
    // behind the first while later offsets of other keys run. A revoke that stopped
    // every waiting message would leave the position before it, and the next owner
    // would apply those later offsets again.
    for s in 0..MESSAGES {
        fx.publish_with_key(&(s / 2).to_string(), s, 1).await;
    }
    // Each handler is busy 400 ms: with 16 handlers at once, a member always has
    // messages in flight on every partition it owns.
    let work = Duration::from_millis(400);
    let a = start_member(&fx, "A", work);
    eventually("A under way", || async {
        let t = tally(&fx.pool, &fx.group).await;
        if t.applied >= 40 { Ok(()) } else { Err(t) }
    })
    .await;
    // B joins: A gives up half its partitions while it has messages in flight there.
    let b = start_member(&fx, "B", work);
    wait_all_applied(&fx, MESSAGES).await;
    a.stop().await;
    b.stop().await;

    let t = tally(&fx.pool, &fx.group).await;
    let by_member = deliveries_by_member(&fx.pool).await;
    let twice: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT string_agg(member, '+' ORDER BY id), kafka_partition, kafka_offset
         FROM deliveries GROUP BY kafka_partition, kafka_offset HAVING count(*) > 1
         ORDER BY 2, 3",
    )
    .fetch_all(&fx.pool)
    .await
    .expect("deliveries twice");
    let report = format!(
        "{t:?}, deliveries by member {by_member:?}, delivered twice (members, partition, offset): {twice:?}"
    );
    eprintln!("revoke with messages in flight: {report}");
    assert!(
        by_member.iter().any(|(m, n)| m == "B" && *n > 0),
        "B took partitions over: {report}"
    );
    assert_eq!(
        (t.distinct_applied, t.applied),
        (MESSAGES, MESSAGES),
        "none lost, none applied twice: {report}"
    );
    // The revoke waited for A's messages in flight and stored their offsets before the
    // partitions went: B started right after them, so nothing was delivered twice.
    assert_eq!(
        t.duplicates_suppressed, 0,
        "a revoke with messages in flight re-delivers nothing: {report}"
    );
}
