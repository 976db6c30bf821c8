//! Poison messages mixed into the stream: malformed JSON and an unknown schema version
//! on the order topic. Each goes to `<topic>.dlq` with its reason; every real order is
//! still paid (the partition does not stop behind a message that can never succeed).

use std::time::Duration;

use kafka_config::headers;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::{DrillEnv, DrillError, Row};

use super::{ORDERS, finish, spawn_load, start_both};

const POISON: [&str; 3] = [
    "{not json",
    r#"{"schema_version":99,"order_id":"x"}"#,
    r#"{"schema_version":1,"order_id":"not-a-uuid"}"#,
];

pub async fn poison_messages() -> Result<Row, DrillError> {
    let env = DrillEnv::create(None).await?;
    let (order, payment) = start_both(&env).await?;
    let load = spawn_load(&order, ORDERS, Duration::ZERO);

    let producer: FutureProducer =
        kafka_config::ProducerSettings::reliable(&env.kafka_bootstrap_servers)
            .client_config()
            .create()
            .map_err(|e| DrillError::Setup(e.to_string()))?;
    for (i, payload) in POISON.iter().enumerate() {
        let event_id = uuid::Uuid::now_v7().to_string();
        let hs = OwnedHeaders::new()
            .insert(Header {
                key: headers::EVENT_ID,
                value: Some(event_id.as_str()),
            })
            .insert(Header {
                key: headers::EVENT_TYPE,
                value: Some("OrderCreated"),
            });
        let key = format!("poison-{i}");
        producer
            .send(
                FutureRecord::to(&env.order_topic)
                    .key(&key)
                    .payload(*payload)
                    .headers(hs),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| DrillError::Setup(format!("publish poison: {e}")))?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let (client, mut report, stats) = finish(&env, load, order, payment).await?;
    // The poison messages carry event ids but are not orders: the checker counts them
    // as published; they are not "lost" orders (accepted counts orders only).
    report.published_unique = report.published_unique.saturating_sub(POISON.len() as u64);
    let letters = kafka_config::read_topic_to_end(
        &env.kafka_bootstrap_servers,
        &kafka_config::dead_letter_topic(&env.order_topic),
        Duration::from_secs(60),
    )
    .await
    .map_err(|e| DrillError::Unexpected(e.to_string()))?;
    let mut row = Row::new("poison messages in the stream", "safe", report);
    row.payment_stats = stats;
    row.dead_lettered = letters.len() as u64;
    let with_reason = letters
        .iter()
        .filter(|l| l.header(headers::DLQ_REASON).is_some())
        .count();
    row.note = format!(
        "client: {} placed; {} of {} poison messages dead-lettered, {with_reason} with a dlq-reason header",
        client.placed,
        letters.len(),
        POISON.len(),
    );
    Ok(row)
}
