//! The start-up check of the dedup retention against the topic's `retention.ms`, on a
//! real topic (the test cluster's brokers keep a topic 24 h, `infra/native/kafka.sh`).

use std::time::Duration;

use payment_service::retention::{dedup_outlives_topic, topic_retention};
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
