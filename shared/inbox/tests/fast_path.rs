//! The Redis fast path on its own: it remembers per group until the TTL, and a Redis
//! that is down or silent costs little and never fails a call.

use std::time::{Duration, Instant};

use inbox::{FastPath, FastPathStats};
use test_support::{ensure_stack, eventually, unique_name};
use uuid::Uuid;

fn fast_path(url: &str) -> FastPath {
    FastPath::new(redis::Client::open(url).expect("redis url")).expect("fast path")
}

#[tokio::test]
async fn remembers_an_id_per_group_until_its_ttl() {
    let fast = fast_path(&ensure_stack().redis_url);
    let (group, other_group) = (unique_name("group"), unique_name("group"));
    let id = Uuid::new_v4();

    assert!(
        !fast.seen_recently(&group, id).await,
        "unknown before remember"
    );
    fast.remember(&group, id, Duration::from_secs(1)).await;
    assert!(fast.seen_recently(&group, id).await, "seen after remember");
    assert!(
        !fast.seen_recently(&other_group, id).await,
        "another group applies the message on its own"
    );
    assert_eq!(
        fast.stats(),
        FastPathStats {
            hits: 1,
            misses: 2,
            remembered: 1,
            unavailable: 0
        }
    );

    eventually("the key expires after its TTL", || async {
        if fast.seen_recently(&group, id).await {
            Err("still seen")
        } else {
            Ok(())
        }
    })
    .await;
}

/// A free port nobody listens on: connections are refused.
fn dead_redis_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    format!("redis://127.0.0.1:{port}")
}

#[tokio::test]
async fn a_dead_redis_costs_little_and_never_fails() {
    let fast = fast_path(&dead_redis_url());
    let group = unique_name("group");
    let started = Instant::now();
    for _ in 0..100 {
        let id = Uuid::new_v4();
        assert!(!fast.seen_recently(&group, id).await);
        fast.remember(&group, id, Duration::from_secs(60)).await;
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(500),
        "100 messages' lookups and records against a dead Redis took {elapsed:?}"
    );
    let stats = fast.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.unavailable),
        (0, 0, 200),
        "every call went without Redis: {stats:?}"
    );
}

#[tokio::test]
async fn a_redis_that_does_not_answer_costs_one_budget_per_pause() {
    // Accepts TCP connections (the kernel's backlog does) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let url = format!(
        "redis://127.0.0.1:{}",
        silent.local_addr().expect("addr").port()
    );
    let fast = fast_path(&url);
    let group = unique_name("group");
    let started = Instant::now();
    for _ in 0..100 {
        assert!(!fast.seen_recently(&group, Uuid::new_v4()).await);
    }
    let elapsed = started.elapsed();
    // One call waits out the budget; the rest are skipped during the pause.
    assert!(
        elapsed >= inbox::CALL_BUDGET && elapsed < inbox::CALL_BUDGET * 4,
        "100 lookups against a silent Redis took {elapsed:?} (budget {:?})",
        inbox::CALL_BUDGET
    );
    assert_eq!(fast.stats().unavailable, 100);
}
