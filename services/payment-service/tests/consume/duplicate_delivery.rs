//! Duplicates delivered vs duplicates applied: the same `OrderCreated` three times
//! (twice with one event id, as a relay re-send after crash point R2 makes it; once
//! with a new event id for the same order, as a replay from elsewhere would) pays once.

use payment_service::StatsSnapshot;
use uuid::Uuid;

use crate::common::{Counts, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_order_created_delivered_three_times_is_paid_once() {
    // The fast path off: this test is about the inbox and the business key, the
    // database's own defences (the fast path has tests of its own).
    let svc = TestApp::spawn(&[("DEDUP_FAST_PATH", "false")]).await;
    let order_id = Uuid::now_v7();
    let event_id = Uuid::now_v7();
    let new_event_id = Uuid::now_v7();
    svc.publish_order_created(event_id, order_id, 1).await;
    svc.publish_order_created(event_id, order_id, 1).await;
    svc.publish_order_created(new_event_id, order_id, 1).await;
    svc.publish_sentinel_and_wait().await;

    let counts = svc.counts(order_id, &[event_id, new_event_id]).await;
    let delivered = 3;
    assert_eq!(
        counts,
        Counts {
            payments: 1,
            outcome_events: 1,
            inbox_rows: 2,
            inbox_duplicates: 1,
            provider_charges: 1,
            provider_calls: 2,
        },
        "delivered {delivered} copies ({} duplicates) vs applied {} payment(s) and {} outcome event(s); \
         suppressed by the inbox: {} (the same event id), by UNIQUE(order_id): {} (the new event id, \
         which reached the provider: {} calls, {} charge)",
        delivered - 1,
        counts.payments,
        counts.outcome_events,
        counts.inbox_duplicates,
        counts.inbox_rows - counts.payments,
        counts.provider_calls,
        counts.provider_charges,
    );
    let status: String = sqlx::query_scalar("SELECT status FROM payments WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(&svc.pool)
        .await
        .expect("payment status");
    assert_eq!(status, "SUCCEEDED");

    // The same story from the service's own counters (`GET /stats`): 3 copies and the
    // sentinel consumed; the order and the sentinel applied; one copy caught by each
    // database defence.
    let expected = StatsSnapshot {
        consumed: 4,
        applied: 2,
        duplicates_redis: 0,
        duplicates_inbox: 1,
        duplicates_business_key: 1,
        dead_lettered: 0,
        dead_letters_truncated: 0,
        retried: 0,
    };
    // The sentinel's counter moves a moment after its payment row became visible.
    let mut stats = svc.stats().await;
    for _ in 0..50 {
        if stats == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        stats = svc.stats().await;
    }
    assert_eq!(
        stats,
        expected,
        "GET /stats: consumed {} = applied {} + suppressed by Redis {} / inbox {} / \
         UNIQUE(order_id) {} + dead-lettered {}",
        stats.consumed,
        stats.applied,
        stats.duplicates_redis,
        stats.duplicates_inbox,
        stats.duplicates_business_key,
        stats.dead_lettered,
    );
    svc.stop().await;
}
