//! Replay by offset reset: an operator moves the group back to the start of the topic
//! (what `kafka-consumer-groups --reset-offsets --to-earliest` does; here, a commit of
//! offset 0 while the group is empty). Every event is delivered again, long after it was
//! applied. The inbox keeps its rows, so each one is recognised as a duplicate and
//! nothing is paid twice (docs/en/05-duplicates.md, "replay or reset of offsets").

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use test_support::{ensure_stack, eventually};
use uuid::Uuid;

use crate::common::TestApp;

const ORDERS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_reset_to_the_earliest_offset_pays_nothing_twice() {
    // The fast path off: the inbox, the durable defence, is what a late replay meets
    // (Redis may have forgotten the ids long ago).
    let svc = TestApp::spawn(&[("DEDUP_FAST_PATH", "false")]).await;
    for _ in 0..ORDERS {
        svc.publish_order_created(Uuid::now_v7(), Uuid::now_v7(), 1)
            .await;
    }
    svc.publish_sentinel_and_wait().await;
    let fixture = svc.stop().await;

    // The group is empty now; move its offset back to the first message.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &ensure_stack().kafka_bootstrap_servers)
        .set("group.id", &fixture.group)
        .create()
        .expect("admin consumer");
    let mut earliest = TopicPartitionList::new();
    earliest
        .add_partition_offset(&fixture.order_topic, 0, Offset::Offset(0))
        .expect("partition");
    // The first service's leave may take a moment to settle the group.
    eventually("the group's offset is reset to 0", || async {
        consumer.commit(&earliest, CommitMode::Sync)
    })
    .await;
    drop(consumer);

    // The service comes back: everything before the new sentinel is delivered again.
    let svc = TestApp::spawn_on(fixture).await;
    svc.publish_sentinel_and_wait().await;
    let payments: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(&svc.pool)
        .await
        .expect("count payments");
    let redelivered: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(duplicate_deliveries), 0)::bigint FROM inbox")
            .fetch_one(&svc.pool)
            .await
            .expect("sum duplicates");
    // 5 orders and the first sentinel, replayed; the second sentinel, new. The counters
    // move a moment after the sentinel's payment row became visible.
    let expected = (ORDERS as u64 + 2, 1, ORDERS as u64 + 1);
    let stats = eventually("GET /stats counts the replay", || async {
        let s = svc.stats().await;
        if (s.consumed, s.applied, s.duplicates_inbox) == expected {
            Ok(s)
        } else {
            Err(s)
        }
    })
    .await;
    eprintln!(
        "offset reset: {} consumed again, {} applied, {} suppressed by the inbox; {payments} payments",
        stats.consumed, stats.applied, stats.duplicates_inbox
    );
    assert_eq!(payments, ORDERS as i64 + 2, "nothing paid twice");
    assert_eq!(
        redelivered,
        ORDERS as i64 + 1,
        "every replayed event was a duplicate"
    );
    svc.stop().await;
}
