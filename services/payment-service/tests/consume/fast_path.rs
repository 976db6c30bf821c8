//! The Redis fast path: a known duplicate skips the database; with Redis down the
//! inbox still catches it, and the payment is applied once either way.

use std::time::Duration;

use inbox::FastPathStats;
use message_consumer::{HandleError, Handler};
use payment_service::Payments;
use payment_service::provider::{PaymentProvider, ProviderSettings};
use test_support::eventually;
use uuid::Uuid;

use crate::common::{APPLIED_ONCE, Counts, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_known_duplicate_is_suppressed_by_redis_before_the_database() {
    let svc = TestApp::spawn(&[("DEDUP_FAST_PATH", "true")]).await;
    let (order_id, event_id) = (Uuid::now_v7(), Uuid::now_v7());
    svc.publish_order_created(event_id, order_id, 1).await;
    svc.publish_order_created(event_id, order_id, 1).await;
    svc.publish_sentinel_and_wait().await;

    let counts = svc.counts(order_id, &[event_id]).await;
    let stats = svc.fast_path.as_ref().expect("fast path on").stats();
    assert_eq!(
        (counts, stats.hits),
        (APPLIED_ONCE, 1),
        "delivered 2 copies vs applied {} payment; suppressed by Redis: {}, by the inbox: {} \
         (the database never saw the second copy)",
        counts.payments,
        stats.hits,
        counts.inbox_duplicates,
    );
    // Misses: the first copy and the sentinel, each remembered after its commit (the
    // sentinel's a moment after its payment row became visible, hence `eventually`).
    let expected = FastPathStats {
        hits: 1,
        misses: 2,
        remembered: 2,
        unavailable: 0,
    };
    eventually("the fast path's counters settle", || async {
        let stats = svc.fast_path.as_ref().expect("fast path on").stats();
        if stats == expected {
            Ok(())
        } else {
            Err(stats)
        }
    })
    .await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_down_duplicates_are_still_suppressed_by_the_inbox() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let dead_redis = format!("redis://127.0.0.1:{port}");
    let svc = TestApp::spawn(&[("DEDUP_FAST_PATH", "true"), ("REDIS_URL", &dead_redis)]).await;
    let (order_id, event_id) = (Uuid::now_v7(), Uuid::now_v7());
    svc.publish_order_created(event_id, order_id, 1).await;
    svc.publish_order_created(event_id, order_id, 1).await;
    svc.publish_sentinel_and_wait().await;

    let counts = svc.counts(order_id, &[event_id]).await;
    let stats = svc.fast_path.as_ref().expect("fast path on").stats();
    assert_eq!(
        counts,
        Counts {
            inbox_duplicates: 1,
            ..APPLIED_ONCE
        },
        "delivered 2 copies vs applied {} payment with Redis down; suppressed by Redis: {}, \
         by the inbox: {}",
        counts.payments,
        stats.hits,
        counts.inbox_duplicates,
    );
    assert_eq!(stats.hits, 0, "{stats:?}");
    assert!(
        stats.unavailable >= 1,
        "Redis was asked and did not answer: {stats:?}"
    );
    svc.stop().await;
}

/// Remember after the commit, never before: an attempt that rolls back must leave no
/// "seen" in Redis, or its retry would be skipped and the payment lost. Driven
/// directly on the handler so the failure is certain: the provider is down for the
/// first attempt, up for the retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_attempt_that_rolls_back_is_not_remembered_so_its_retry_applies() {
    let svc = TestApp::spawn(&[("DEDUP_FAST_PATH", "true")]).await;
    let (order_id, event_id) = (Uuid::now_v7(), Uuid::now_v7());
    let message = svc.order_created_message(event_id, order_id);
    let handler = |failure_rate: f64| Payments {
        pool: svc.pool.clone(),
        provider: PaymentProvider::new(
            svc.pool.clone(),
            ProviderSettings {
                latency: Duration::ZERO,
                failure_rate,
                without_idempotency_key: false,
            },
        ),
        consumer_group: svc.group.clone(),
        payment_events_topic: svc.payment_topic.clone(),
        fast_path: svc.fast_path.clone(),
        dedup_ttl: Duration::from_secs(60),
        inbox_off: false,
        business_key_off: false,
        metrics: Default::default(),
    };

    let first = handler(1.0).handle(&message).await;
    assert!(
        matches!(first, Err(HandleError::Unavailable(_))),
        "the provider is down: {first:?}"
    );
    handler(0.0)
        .handle(&message)
        .await
        .expect("the retry applies the payment");

    let counts = svc.counts(order_id, &[event_id]).await;
    let stats = svc.fast_path.as_ref().expect("fast path on").stats();
    assert_eq!(
        (counts, stats.hits),
        (APPLIED_ONCE, 0),
        "2 attempts (1 rolled back) vs {} payment applied; the retry was taken for a \
         duplicate by Redis {} time(s)",
        counts.payments,
        stats.hits,
    );
    svc.stop().await;
}
