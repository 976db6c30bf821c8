//! What the consumer-loop tests share: a handler that records every application into a
//! real Postgres table (so the counts are the database's, not the test's), a producer,
//! and a reader for the dead-letter topic.

use std::time::Duration;

use kafka_config::headers;
use message_consumer::{
    ConsumerSettings, EventHeaders, HandleError, Handled, Handler, MessageConsumer, Processed,
    ReceivedMessage,
};

use lifecycle::Shutdown;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use sqlx::{Executor, PgPool};
use test_support::{StopHandle, TestDatabase, create_unique_topic, ensure_stack, unique_name};
use uuid::Uuid;

/// The test's tables. `applied` has no unique key on purpose: a message applied twice
/// shows up as two rows, which is exactly what the tests look for.
const SCHEMA: &str = r"
CREATE TABLE applied (
    id              bigserial PRIMARY KEY,
    seq             bigint    NOT NULL,
    event_id        uuid      NOT NULL,
    kafka_partition integer   NOT NULL,
    kafka_offset    bigint    NOT NULL
);
CREATE TABLE attempts (seq bigint PRIMARY KEY, n integer NOT NULL);
CREATE TABLE planned_failures (seq bigint PRIMARY KEY, remaining integer NOT NULL);
";

/// A handler that behaves like a service's: it rejects what it cannot read
/// (permanent), fails transiently when `planned_failures` says so, and otherwise
/// applies the message by inserting a row into `applied`.
#[derive(Debug, Clone)]
pub struct Recorder {
    pool: PgPool,
    /// After applying this `seq`, keep the message in hand this long before returning:
    /// work that follows the effect, during which a graceful stop may arrive.
    pub slow_tail: Option<(i64, Duration)>,
}

impl Handler for Recorder {
    async fn handle(&self, message: &ReceivedMessage) -> Result<Handled, HandleError> {
        let event_id = message.event_id()?;
        let body: Value = serde_json::from_slice(message.payload.as_deref().unwrap_or_default())
            .map_err(|e| HandleError::Permanent(format!("malformed JSON: {e}")))?;
        let schema = body["schema_version"].as_i64();
        if schema != Some(1) {
            return Err(HandleError::Permanent(format!(
                "unknown schema_version {schema:?}"
            )));
        }
        let seq = body["seq"]
            .as_i64()
            .ok_or_else(|| HandleError::Permanent("no seq".to_owned()))?;

        sqlx::query(
            "INSERT INTO attempts (seq, n) VALUES ($1, 1)
             ON CONFLICT (seq) DO UPDATE SET n = attempts.n + 1",
        )
        .bind(seq)
        .execute(&self.pool)
        .await
        .map_err(transient)?;
        let planned = sqlx::query(
            "UPDATE planned_failures SET remaining = remaining - 1
             WHERE seq = $1 AND remaining > 0",
        )
        .bind(seq)
        .execute(&self.pool)
        .await
        .map_err(transient)?;
        if planned.rows_affected() > 0 {
            return Err(HandleError::Transient(format!(
                "planned failure of seq {seq}"
            )));
        }
        sqlx::query(
            "INSERT INTO applied (seq, event_id, kafka_partition, kafka_offset)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(seq)
        .bind(event_id)
        .bind(message.partition)
        .bind(message.offset)
        .execute(&self.pool)
        .await
        .map_err(transient)?;
        if let Some((slow_seq, tail)) = self.slow_tail {
            if slow_seq == seq {
                tokio::time::sleep(tail).await;
            }
        }
        Ok(Handled::Applied)
    }
}

fn transient(e: sqlx::Error) -> HandleError {
    HandleError::Transient(format!("test database: {e}"))
}

/// One test's world: a single-partition topic (so "order" means one thing), its
/// dead-letter topic, a consumer group name, a database with the recorder's tables.
pub struct Fixture {
    pub pool: PgPool,
    pub topic: String,
    pub dead_letter_topic: String,
    pub group: String,
    pub bootstrap: String,
    pub producer: FutureProducer,
    _db: TestDatabase,
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with_partitions(1).await
    }

    /// A topic of `partitions` partitions (several: for tests of the group itself).
    pub async fn with_partitions(partitions: i32) -> Self {
        let bootstrap = ensure_stack().kafka_bootstrap_servers.clone();
        let topic = create_unique_topic("consumer-loop", partitions, 3).await;
        // Auto topic creation is off: the dead-letter topic must exist before the first
        // dead letter, as `Infrastructure::ensure_topics` makes sure in the services.
        let dead_letter_topic = kafka_config::dead_letter_topic(&topic);
        kafka_config::create_topic(&bootstrap, &dead_letter_topic, 1, 3)
            .await
            .expect("create the dead-letter topic");
        let db = TestDatabase::create().await;
        let pool = db.pool().await;
        pool.execute(SCHEMA).await.expect("create the test tables");
        let producer = kafka_config::ProducerSettings::reliable(&bootstrap)
            .client_config()
            .create()
            .expect("producer");
        Self {
            pool,
            topic,
            dead_letter_topic,
            group: unique_name("consumer-loop-group"),
            bootstrap,
            producer,
            _db: db,
        }
    }

    /// Backoff capped at 200 ms so retries are quick in tests.
    pub fn settings(&self) -> ConsumerSettings {
        let mut settings = ConsumerSettings::new(&self.bootstrap, &self.group, &self.topic);
        settings.max_backoff = Duration::from_millis(200);
        settings
    }

    pub fn recorder(&self) -> Recorder {
        Recorder {
            pool: self.pool.clone(),
            slow_tail: None,
        }
    }

    pub fn consumer(&self, recorder: Recorder) -> MessageConsumer<Recorder> {
        MessageConsumer::new(self.settings(), recorder).expect("consumer")
    }

    /// Starts a group member with `run`, as a service does; stop it with the handle.
    pub fn start(&self, recorder: Recorder) -> StopHandle {
        let shutdown = Shutdown::default();
        let task = tokio::spawn(self.consumer(recorder).run(shutdown.clone()));
        StopHandle::for_loop(shutdown, task)
    }

    /// Publishes raw headers and payload; returns the offset the broker gave it.
    pub async fn publish(&self, hs: &[(&str, &str)], payload: &[u8]) -> i64 {
        let owned = headers::from_pairs(hs.iter().map(|(k, v)| (*k, Some(*v))));
        let record = FutureRecord::to(&self.topic)
            .key("k")
            .payload(payload)
            .headers(owned);
        let delivery = self
            .producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("publish to the test topic");
        assert_eq!(delivery.partition, 0, "the test topic has one partition");
        delivery.offset
    }

    /// Publishes a well-formed message with sequence number `seq`; returns its offset.
    pub async fn publish_good(&self, seq: i64) -> i64 {
        let id = Uuid::new_v4().to_string();
        let payload = format!(r#"{{"schema_version":1,"seq":{seq}}}"#);
        self.publish(
            &[(headers::EVENT_ID, &id), (headers::EVENT_TYPE, "Test")],
            payload.as_bytes(),
        )
        .await
    }

    /// Publishes a message with sequence number `seq`, keyed by it (so a multi-partition
    /// topic spreads them), and schema version `schema`; returns its event id.
    pub async fn publish_keyed(&self, seq: i64, schema: i64) -> Uuid {
        self.publish_with_key(&seq.to_string(), seq, schema).await
    }

    /// Publishes a message with sequence number `seq` under `key`; returns its event id.
    pub async fn publish_with_key(&self, key: &str, seq: i64, schema: i64) -> Uuid {
        let id = Uuid::new_v4();
        let payload = format!(r#"{{"schema_version":{schema},"seq":{seq}}}"#);
        let id_text = id.to_string();
        let owned = headers::for_event(&id_text, "Test", []);
        let record = FutureRecord::to(&self.topic)
            .key(key)
            .payload(&payload)
            .headers(owned);
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("publish to the test topic");
        id
    }

    pub async fn plan_failures(&self, seq: i64, times: i32) {
        sqlx::query(
            "INSERT INTO planned_failures (seq, remaining) VALUES ($1, $2)
             ON CONFLICT (seq) DO UPDATE SET remaining = EXCLUDED.remaining",
        )
        .bind(seq)
        .bind(times)
        .execute(&self.pool)
        .await
        .expect("plan failures");
    }

    /// Every application, in the order the handler made them.
    pub async fn applied_seqs(&self) -> Vec<i64> {
        sqlx::query_scalar("SELECT seq FROM applied ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .expect("read applied")
    }

    pub async fn attempts(&self, seq: i64) -> i32 {
        sqlx::query_scalar("SELECT n FROM attempts WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&self.pool)
            .await
            .expect("read attempts")
            .unwrap_or(0)
    }

    /// Drives `consume_once` until `count` messages are processed (bounded: 60 s).
    pub async fn drive(
        &self,
        consumer: &MessageConsumer<Recorder>,
        count: usize,
    ) -> Vec<Processed> {
        self.drive_with(consumer, count).await
    }

    /// `drive` for any handler.
    pub async fn drive_with<H: Handler>(
        &self,
        consumer: &MessageConsumer<H>,
        count: usize,
    ) -> Vec<Processed> {
        let shutdown = Shutdown::default();
        let mut outcomes = Vec::new();
        let driven = tokio::time::timeout(Duration::from_secs(60), async {
            while outcomes.len() < count {
                if let Some(outcome) = consumer
                    .consume_once(Duration::from_secs(1), &shutdown)
                    .await
                    .expect("consume_once")
                {
                    outcomes.push(outcome);
                }
            }
        })
        .await;
        assert!(
            driven.is_ok(),
            "processed {} of {count} messages within 60s: {outcomes:?}",
            outcomes.len()
        );
        outcomes
    }

    /// The whole dead-letter topic, read to its end: exactly `count` messages.
    pub async fn read_dead_letters(&self, count: usize) -> Vec<ReceivedMessage> {
        let letters = test_support::read_topic(&self.dead_letter_topic).await;
        assert_eq!(
            letters.len(),
            count,
            "messages on {}",
            self.dead_letter_topic
        );
        letters
    }
}
