//! The start-up check of the dedup retention against the topic's `retention.ms`, on a
//! real topic (the test cluster's brokers keep a topic 24 h, `infra/native/kafka.sh`).

use std::time::Duration;

use inbox::dedup_outlives_topic;
use kafka_config::topic_retention;
use test_support::{create_unique_topic, ensure_stack};

#[tokio::test]
async fn the_topic_retention_is_read_from_the_cluster_and_compared() {
    let topic = create_unique_topic("order-events", 1, 3).await;
    let retention = topic_retention(&ensure_stack().kafka_bootstrap_servers, &topic)
        .await
        .expect("describe_configs");
    let topic_keeps = retention.expect("a finite retention.ms on the test cluster");
    assert_eq!(
        topic_keeps,
        Duration::from_secs(24 * 3600),
        "log.retention.hours=24"
    );
    assert!(
        dedup_outlives_topic(Duration::from_secs(168 * 3600), retention),
        "DEDUP_RETENTION_HOURS=168 (the default) covers it"
    );
    assert!(
        !dedup_outlives_topic(Duration::from_secs(3600), retention),
        "DEDUP_RETENTION_HOURS=1 does not: the warning case"
    );
}

/// The purge loop deletes its own group's rows older than the retention at once (then
/// hourly), and leaves younger rows and other groups' alone.
#[tokio::test]
async fn the_purge_loop_deletes_only_its_groups_old_rows() {
    let db = test_support::TestDatabase::create().await;
    let pool = db.pool().await;
    inbox::MIGRATOR.run(&pool).await.expect("migrations");
    for (group, age_hours) in [("mine", 200), ("mine", 1), ("theirs", 200)] {
        sqlx::query(
            "INSERT INTO inbox (consumer_group, message_id, topic, kafka_partition, kafka_offset, received_at)
             VALUES ($1, gen_random_uuid(), 't', 0, 0, now() - make_interval(hours => $2))",
        )
        .bind(group)
        .bind(age_hours)
        .execute(&pool)
        .await
        .expect("row");
    }
    let shutdown = lifecycle::Shutdown::default();
    let purge = tokio::spawn(inbox::purge_periodically(
        pool.clone(),
        "mine".to_owned(),
        Duration::from_secs(168 * 3600),
        shutdown.clone(),
    ));
    test_support::eventually("the old row of `mine` is purged", || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
            .fetch_one(&pool)
            .await
            .map_err(|e| e.to_string())?;
        if left == 2 {
            Ok(())
        } else {
            Err(format!("{left} rows"))
        }
    })
    .await;
    shutdown.trigger();
    purge.await.expect("purge task");
    let groups: Vec<String> = sqlx::query_scalar("SELECT consumer_group FROM inbox ORDER BY 1")
        .fetch_all(&pool)
        .await
        .expect("rows");
    assert_eq!(groups, ["mine", "theirs"]);
}
