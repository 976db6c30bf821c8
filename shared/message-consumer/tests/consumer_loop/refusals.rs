//! Messages that can never succeed must not stall their key (issue: one `OrderCreated`
//! with `currency: "EURO"` stopped every payment):
//! - the SQLSTATE decides: refused data (classes 22, 23) is permanent, an unreachable
//!   database is waited out, anything else is retried up to `CONSUMER_MAX_RETRIES`;
//! - a transient failure that never ends is dead-lettered once the retries are used up;
//! - an unavailable dependency is never dead-lettered, however long it lasts;
//! - a dead letter the broker refuses whole goes as a truncated copy, counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kafka_config::headers;
use message_consumer::{
    HandleError, Handled, Handler, MessageConsumer, Processed, ReceivedMessage, database_error,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::Executor;

use crate::support::{Fixture, Recorder};

#[tokio::test]
async fn the_sqlstate_decides_between_dead_letter_retry_and_waiting() {
    let fx = Fixture::new().await;
    fx.pool
        .execute("CREATE TABLE refusing (currency char(3) NOT NULL UNIQUE, reason text)")
        .await
        .expect("table");
    let insert = |currency: &'static str, reason: &'static str| {
        let pool = fx.pool.clone();
        async move {
            sqlx::query("INSERT INTO refusing (currency, reason) VALUES ($1, $2)")
                .bind(currency)
                .bind(reason)
                .execute(&pool)
                .await
                .expect_err("refused")
        }
    };
    // 22001: value too long for type character(3).
    let too_long = database_error("db", &insert("EURO", "").await);
    assert!(
        matches!(&too_long, HandleError::Permanent(m) if m.contains("22001")),
        "{too_long:?}"
    );
    // 22P05 / 22021: a NUL character in text.
    let nul = database_error("db", &insert("EUR", "a\u{0}b").await);
    assert!(
        matches!(&nul, HandleError::Permanent(m) if m.contains("SQLSTATE 22")),
        "{nul:?}"
    );
    // 23505: a unique violation.
    sqlx::query("INSERT INTO refusing (currency) VALUES ('USD')")
        .execute(&fx.pool)
        .await
        .expect("first");
    let unique = database_error("db", &insert("USD", "").await);
    assert!(
        matches!(&unique, HandleError::Permanent(m) if m.contains("23505")),
        "{unique:?}"
    );
    // 42P01: an undefined table is no fault of the message: retried (up to the cap).
    let undefined = database_error(
        "db",
        &sqlx::query("SELECT * FROM no_such_table")
            .execute(&fx.pool)
            .await
            .expect_err("no table"),
    );
    assert!(
        matches!(undefined, HandleError::Transient(_)),
        "{undefined:?}"
    );
    // Nobody listens: the database is unreachable, which is waited out.
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/x",
        test_support::unused_port()
    );
    let refused = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(2))
        .connect(&url)
        .await
        .expect_err("nothing listens");
    let unreachable = database_error("db", &refused);
    assert!(
        matches!(unreachable, HandleError::Unavailable(_)),
        "{unreachable:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_that_never_ends_is_dead_lettered_after_the_cap() {
    let fx = Fixture::new().await;
    fx.plan_failures(1, 1_000).await;
    for seq in 0..3 {
        fx.publish_good(seq).await;
    }
    let mut settings = fx.settings();
    settings.max_retries = 3;
    let consumer = MessageConsumer::new(settings, fx.recorder()).expect("consumer");
    let outcomes = fx.drive(&consumer, 3).await;
    let reason = match &outcomes[1] {
        Processed::DeadLettered { reason, .. } => reason.clone(),
        other => panic!("seq 1 should be dead-lettered: {other:?}"),
    };
    assert!(
        reason.contains("retries exhausted (3 retries)") && reason.contains("planned failure"),
        "{reason}"
    );
    assert_eq!(fx.applied_seqs().await, [0, 2], "the key moved on");
    assert_eq!(fx.attempts(1).await, 4, "the first try and three retries");
    let letters = fx.read_dead_letters(1).await;
    assert!(
        letters[0]
            .header(headers::DLQ_REASON)
            .is_some_and(|r| r.contains("retries exhausted")),
        "{:?}",
        letters[0].headers
    );
}

/// The recorder behind a dependency that is unreachable for its first `outage` calls.
struct Unreachable {
    inner: Recorder,
    outage: u32,
    calls: Arc<AtomicU32>,
}

impl Handler for Unreachable {
    async fn handle(&self, message: &ReceivedMessage) -> Result<Handled, HandleError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.outage {
            return Err(HandleError::Unavailable(
                "database: connection refused".into(),
            ));
        }
        self.inner.handle(message).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_dependency_is_waited_out_never_dead_lettered() {
    let fx = Fixture::new().await;
    fx.publish_good(0).await;
    let mut settings = fx.settings();
    settings.max_retries = 2;
    let handler = Unreachable {
        inner: fx.recorder(),
        outage: 8,
        calls: Arc::default(),
    };
    let consumer = MessageConsumer::new(settings, handler).expect("consumer");
    let outcomes = fx.drive_with(&consumer, 1).await;
    assert!(
        matches!(outcomes[0], Processed::Applied { .. }),
        "{outcomes:?}"
    );
    assert_eq!(
        consumer.counters().counts().retried,
        8,
        "four times the cap, waited out"
    );
    assert_eq!(fx.applied_seqs().await, [0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_too_large_for_the_broker_goes_as_a_truncated_copy() {
    let fx = Fixture::new().await;
    // The topic takes records up to 3 MB; the dead-letter producer (the reliable
    // settings) and topic take 1 MB. The original arrives; its dead letter cannot.
    let big_topic = test_support::unique_name("consumer-loop-big");
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &fx.bootstrap)
        .create()
        .expect("admin");
    let topic = NewTopic::new(&big_topic, 1, TopicReplication::Fixed(3))
        .set("max.message.bytes", "3000000")
        .set("min.insync.replicas", "2");
    admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create")[0]
        .as_ref()
        .expect("created");
    let dead_letter_topic = kafka_config::dead_letter_topic(&big_topic);
    kafka_config::create_topic(&fx.bootstrap, &dead_letter_topic, 1, 3)
        .await
        .expect("dead-letter topic");
    let producer: FutureProducer = kafka_config::ProducerSettings::reliable(&fx.bootstrap)
        .client_config()
        .set("message.max.bytes", "3000000")
        .set("compression.type", "none")
        .create()
        .expect("producer");
    // 1.5 MB that does not compress: an unknown schema, so a permanent failure.
    let pad: String = (0..1_500_000).map(|_| fastrand::alphanumeric()).collect();
    let payload = format!(r#"{{"schema_version":99,"pad":"{pad}"}}"#);
    let id = uuid::Uuid::new_v4().to_string();
    let hs = OwnedHeaders::new()
        .insert(Header {
            key: headers::EVENT_ID,
            value: Some(id.as_str()),
        })
        .insert(Header {
            key: headers::EVENT_TYPE,
            value: Some("Test"),
        });
    producer
        .send(
            FutureRecord::to(&big_topic)
                .key("k")
                .payload(&payload)
                .headers(hs),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("the original is accepted");

    let mut settings = fx.settings();
    settings.topics = vec![big_topic.clone()];
    settings.dead_letter_topic = dead_letter_topic.clone();
    let consumer = MessageConsumer::new(settings, fx.recorder()).expect("consumer");
    let outcomes = fx.drive(&consumer, 1).await;
    assert!(
        matches!(outcomes[0], Processed::DeadLettered { .. }),
        "{outcomes:?}"
    );
    assert_eq!(consumer.counters().counts().dead_letters_truncated, 1);
    let letters = test_support::read_topic(&dead_letter_topic).await;
    assert_eq!(letters.len(), 1, "one dead letter, not a silent skip");
    let letter = &letters[0];
    assert_eq!(letter.header(headers::DLQ_TRUNCATED), Some("true"));
    assert_eq!(letter.header(headers::EVENT_ID), Some(id.as_str()));
    assert_eq!(
        letter.header(headers::DLQ_ORIGINAL_TOPIC),
        Some(big_topic.as_str())
    );
    assert!(
        letter
            .header(headers::DLQ_REASON)
            .is_some_and(|r| r.contains("schema_version"))
    );
    assert_eq!(letter.payload.as_ref().map(Vec::len), Some(64 * 1024));
}
