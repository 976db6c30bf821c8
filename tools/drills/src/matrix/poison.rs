//! Poison messages mixed into the stream: malformed JSON and an unknown schema version
//! on the order topic, well-formed ones the database would refuse (`currency: "EURO"`
//! against `char(3)`; a decline reason with a `\u0000` on the payment topic, refused by
//! Postgres as 22P05). Each goes to `<topic>.dlq` with its reason; every real order is
//! still paid (the partition does not stop behind a message that can never succeed).
//! Before the decode checks and the SQLSTATE classes, "EURO" was retried every 30 s for
//! ever and the orders behind it stayed unpaid.

use std::time::Duration;

use kafka_config::headers;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::{DrillEnv, DrillError, Row};

use super::{ORDERS, finish, spawn_load, start_both};

/// On the order topic, as `OrderCreated`.
const POISON: [&str; 4] = [
    "{not json",
    r#"{"schema_version":99,"order_id":"x"}"#,
    r#"{"schema_version":1,"order_id":"not-a-uuid"}"#,
    r#"{"schema_version":1,"order_id":"0193a000-0000-7000-8000-000000000001","amount_minor":1000,"currency":"EURO"}"#,
];

/// On the payment topic, as `PaymentFailed`: order-service's consumer.
const POISON_OUTCOME: &str = r#"{"schema_version":1,"order_id":"0193a000-0000-7000-8000-000000000002","payment_id":"0193a000-0000-7000-8000-000000000003","reason":"declined\u0000"}"#;

pub async fn poison_messages() -> Result<Row, DrillError> {
    let env = DrillEnv::create(None).await?;
    let (order, payment) = start_both(&env).await?;
    let load = spawn_load(&order, ORDERS, Duration::ZERO);
    publish_poison(&env).await?;

    let (client, mut report, stats) = finish(&env, load, order, payment).await?;
    // The poison messages carry event ids but are not orders: the checker counts them
    // as published; they are not "lost" orders (accepted counts orders only).
    report.published_unique = report.published_unique.saturating_sub(POISON.len() as u64);
    let letters = dead_letters(&env).await?;
    let mut row = Row::new("poison messages in the stream", "safe", report);
    row.payment_stats = stats;
    row.dead_lettered = letters.len() as u64;
    let with_reason = letters
        .iter()
        .filter(|l| l.header(headers::DLQ_REASON).is_some())
        .count();
    let reasons: Vec<&str> = letters
        .iter()
        .filter_map(|l| l.header(headers::DLQ_REASON))
        .collect();
    row.note = format!(
        "client: {} placed; {} of {} poison messages dead-lettered, {with_reason} with a dlq-reason header ({})",
        client.placed,
        letters.len(),
        POISON_COUNT,
        reasons.join("; ")
    );
    Ok(row)
}

/// How many poison messages [`publish_poison`] sends: on the order topic, and one on the
/// payment topic.
pub const POISON_COUNT: usize = POISON.len() + 1;
pub(crate) const POISON_ON_ORDER_TOPIC: u64 = POISON.len() as u64;

fn producer(bootstrap_servers: &str) -> Result<FutureProducer, DrillError> {
    kafka_config::ProducerSettings::reliable(bootstrap_servers)
        .client_config()
        .create()
        .map_err(DrillError::setup)
}

/// Every poison shape, one after the other, each with an event id of its own.
pub(crate) async fn publish_poison(env: &DrillEnv) -> Result<(), DrillError> {
    publish_poison_to(
        &env.kafka_bootstrap_servers,
        &env.order_topic,
        &env.payment_topic,
    )
    .await
}

/// The same on any cluster and topics: pub for tools/control-room's "send a poison message".
pub async fn publish_poison_to(
    bootstrap_servers: &str,
    order_topic: &str,
    payment_topic: &str,
) -> Result<(), DrillError> {
    let producer = producer(bootstrap_servers)?;
    let shapes = POISON
        .iter()
        .map(|p| (order_topic, "OrderCreated", *p))
        .chain([(payment_topic, "PaymentFailed", POISON_OUTCOME)]);
    for (i, (topic, event_type, payload)) in shapes.enumerate() {
        let event_id = uuid::Uuid::now_v7().to_string();
        let hs = OwnedHeaders::new()
            .insert(Header {
                key: headers::EVENT_ID,
                value: Some(event_id.as_str()),
            })
            .insert(Header {
                key: headers::EVENT_TYPE,
                value: Some(event_type),
            });
        let key = format!("poison-{i}");
        producer
            .send(
                FutureRecord::to(topic)
                    .key(&key)
                    .payload(payload)
                    .headers(hs),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| DrillError::Setup(format!("publish poison: {e}")))?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

/// What reached the dead-letter topics of both topics.
pub(crate) async fn dead_letters(env: &DrillEnv) -> Result<Vec<kafka_config::Record>, DrillError> {
    let mut letters = Vec::new();
    for topic in [&env.order_topic, &env.payment_topic] {
        letters.extend(
            kafka_config::read_topic_to_end(
                &env.kafka_bootstrap_servers,
                &kafka_config::dead_letter_topic(topic),
                Duration::from_secs(60),
            )
            .await
            .map_err(DrillError::unexpected)?,
        );
    }
    Ok(letters)
}

/// Hand-made duplicates: the latest `n` events on the order topic published again as
/// they are (same key, payload and event id), what a producer retry or a re-claimed
/// outbox row does, minutes after the original at most. The inbox must apply each once.
/// (The latest, not the first: in a long run the first events are older than the
/// dedup retention, and the inbox has rightly forgotten them.) Returns how many were
/// re-sent.
pub(crate) async fn publish_copies(env: &DrillEnv, n: usize) -> Result<usize, DrillError> {
    publish_copies_to(&env.kafka_bootstrap_servers, &env.order_topic, n).await
}

/// The same on any cluster and topic: pub for tools/control-room's "re-deliver N".
pub async fn publish_copies_to(
    bootstrap_servers: &str,
    order_topic: &str,
    n: usize,
) -> Result<usize, DrillError> {
    let producer = producer(bootstrap_servers)?;
    let records =
        kafka_config::read_topic_to_end(bootstrap_servers, order_topic, Duration::from_secs(60))
            .await
            .map_err(DrillError::unexpected)?;
    let mut sent = 0;
    for r in records
        .iter()
        .rev()
        .filter(|r| r.header(headers::EVENT_ID).is_some())
        .take(n)
    {
        let mut hs = OwnedHeaders::new();
        for (key, value) in &r.headers {
            hs = hs.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(order_topic).headers(hs);
        if let Some(key) = &r.key {
            record = record.key(key);
        }
        if let Some(payload) = &r.payload {
            record = record.payload(payload);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| DrillError::Setup(format!("publish a copy: {e}")))?;
        sent += 1;
    }
    Ok(sent)
}
