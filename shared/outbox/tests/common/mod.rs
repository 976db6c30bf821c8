//! What the outbox tests share: a migrated database, a relay, a reader of the topic.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use outbox::{ClaimStrategy, OutboxMessage, Relay, RelayConfig};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use sqlx::PgPool;
use test_support::{TestDatabase, ensure_stack, unique_name};

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
    let producer =
        kafka_config::ProducerSettings::reliable(&ensure_stack().kafka_bootstrap_servers)
            .client_config()
            .create()
            .expect("producer");
    let mut config = RelayConfig::new(id);
    config.strategy = strategy;
    config.batch_size = batch_size;
    config.lease = lease;
    config.poll_interval = Duration::from_millis(50);
    Relay::new(pool.clone(), producer, config)
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

/// Reads until `expected` distinct event ids were seen (or 60 s passed), then keeps
/// reading 1 s more to catch duplicates. Returns everything, copies included.
pub async fn read_topic(topic: &str, expected: usize) -> Vec<Received> {
    let consumer: StreamConsumer = kafka_config::at_least_once_consumer(
        &ensure_stack().kafka_bootstrap_servers,
        &unique_name("reader"),
    )
    .create()
    .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut received = Vec::new();
    let mut distinct: HashMap<String, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut grace: Option<tokio::time::Instant> = None;
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline || grace.is_some_and(|g| now >= g) {
            break;
        }
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(300), consumer.recv()).await
        else {
            continue;
        };
        let event_id = m
            .headers()
            .and_then(|hs| hs.iter().find(|h| h.key == kafka_config::headers::EVENT_ID))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        *distinct.entry(event_id.clone()).or_default() += 1;
        received.push(Received {
            key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            event_id,
            payload: serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_default(),
            partition: m.partition(),
        });
        if distinct.len() >= expected && grace.is_none() {
            grace = Some(tokio::time::Instant::now() + Duration::from_secs(1));
        }
    }
    received
}

pub async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}
