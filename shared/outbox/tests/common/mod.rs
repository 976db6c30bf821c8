//! What the outbox tests share: a migrated database, a relay, a reader of the topic.

#![allow(dead_code)]

use std::time::Duration;

use outbox::{ClaimStrategy, OutboxMessage, Relay, RelayConfig};
use sqlx::PgPool;
use test_support::{TestDatabase, ensure_stack};

pub async fn migrated_db() -> (TestDatabase, PgPool) {
    let db = TestDatabase::create().await;
    let pool = db.pool().await;
    outbox::MIGRATOR
        .run(&pool)
        .await
        .expect("outbox migrations");
    (db, pool)
}

pub fn relay(
    pool: &PgPool,
    id: &str,
    strategy: ClaimStrategy,
    batch_size: i64,
    lease: Duration,
) -> Relay {
    let config = relay_config(id, strategy, batch_size, lease);
    let producer = config
        .producer_settings(&ensure_stack().kafka_bootstrap_servers)
        .client_config()
        .create()
        .expect("producer");
    Relay::new(pool.clone(), producer, config)
}

/// The configuration [`relay`] uses: the defaults with a short poll, and a delivery
/// timeout of at most half the lease (the rule `RelayConfig::from_lookup` enforces).
pub fn relay_config(
    id: &str,
    strategy: ClaimStrategy,
    batch_size: i64,
    lease: Duration,
) -> RelayConfig {
    let mut config = RelayConfig::new(id);
    config.strategy = strategy;
    config.batch_size = batch_size;
    config.lease = lease;
    config.delivery_timeout = config.delivery_timeout.min(lease / 2);
    config.poll_interval = Duration::from_millis(50);
    config
}

/// The services' producer (`ProducerSettings::reliable`) on the test cluster.
pub fn producer() -> rdkafka::producer::FutureProducer {
    kafka_config::ProducerSettings::reliable(&ensure_stack().kafka_bootstrap_servers)
        .client_config()
        .create()
        .expect("producer")
}

/// Enqueues one event in its own transaction.
pub async fn enqueue(
    pool: &PgPool,
    topic: &str,
    key: &str,
    payload: serde_json::Value,
) -> OutboxMessage {
    let message = OutboxMessage::new(topic, key, "TestEvent", payload);
    let mut tx = pool.begin().await.expect("begin");
    outbox::enqueue(&mut tx, &message).await.expect("enqueue");
    tx.commit().await.expect("commit");
    message
}

/// One record read back from the topic.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: String,
    pub event_id: String,
    pub payload: serde_json::Value,
    pub partition: i32,
}

/// Everything the topic holds now, copies included (call after the rows are SENT:
/// a SENT row's record is acknowledged, so it is in the topic).
pub async fn read_topic(topic: &str) -> Vec<Received> {
    let records = test_support::read_topic(topic).await;
    records
        .into_iter()
        .map(|r| Received {
            key: r.key_str().unwrap_or_default().to_owned(),
            event_id: r
                .header(kafka_config::headers::EVENT_ID)
                .unwrap_or_default()
                .to_owned(),
            payload: serde_json::from_slice(r.payload.as_deref().unwrap_or_default())
                .unwrap_or_default(),
            partition: r.partition,
        })
        .collect()
}

/// The topic's records counted two ways: copies per event id, and the payloads' `n`
/// per key in the order the topic holds them (what per-key order is checked on).
pub fn copies_and_order(
    received: &[Received],
) -> (
    std::collections::HashMap<String, usize>,
    std::collections::BTreeMap<String, Vec<i64>>,
) {
    let mut copies = std::collections::HashMap::<String, usize>::new();
    let mut per_key = std::collections::BTreeMap::<String, Vec<i64>>::new();
    for r in received {
        *copies.entry(r.event_id.clone()).or_default() += 1;
        per_key
            .entry(r.key.clone())
            .or_default()
            .push(r.payload["n"].as_i64().expect("n"));
    }
    (copies, per_key)
}

pub async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}
