//! The scale-out drill's consumer of numbered events (see `drills::key_order`):
//! the shared consumer loop (`message-consumer`: key-ordered, in parallel, offsets
//! stored only up to the first unfinished message) with a handler whose effect is one
//! row per event, committed in the inbox's transaction, as payment-service does.
//!
//! Several of these run in one consumer group; the drill kills one with SIGKILL.
//! A short random pause inside the effect makes overtaking likely if the loop ever
//! ran one key's events side by side.
//!
//! Variables: KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, SEQUENCE_TOPIC, CONSUMER_GROUP,
//! CONSUMER_CONCURRENCY (default: the library's).
#![allow(clippy::print_stderr)]

use std::time::Duration;

use lifecycle::Shutdown;
use message_consumer::{
    ConsumerSettings, DEFAULT_CONCURRENCY, DedupLayer, EventHeaders, HandleError, Handled, Handler,
    MessageConsumer, ReceivedMessage,
};
use sqlx::PgPool;

struct ApplySteps {
    pool: PgPool,
    group: String,
}

impl Handler for ApplySteps {
    async fn handle(&self, message: &ReceivedMessage) -> Result<Handled, HandleError> {
        let event_id = message.event_id()?;
        let payload: serde_json::Value =
            serde_json::from_slice(message.payload.as_deref().unwrap_or_default())
                .map_err(|e| HandleError::Permanent(format!("payload: {e}")))?;
        let (Some(key), Some(step)) = (payload["key"].as_str(), payload["step"].as_i64()) else {
            return Err(HandleError::Permanent("payload without key/step".into()));
        };
        let transient = |e: sqlx::Error| HandleError::Transient(e.to_string());
        let Some(mut tx) =
            inbox::begin_first_delivery(&self.pool, &self.group, event_id, message.into())
                .await
                .map_err(transient)?
        else {
            return Ok(Handled::Duplicate(DedupLayer::Inbox));
        };
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..5))).await;
        sqlx::query("INSERT INTO sequence_effects (message_key, step) VALUES ($1, $2)")
            .bind(key)
            .bind(step)
            .execute(&mut *tx)
            .await
            .map_err(transient)?;
        tx.commit().await.map_err(transient)?;
        Ok(Handled::Applied)
    }
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!("sequence-consumer: {name} is not set");
        std::process::exit(2)
    })
}

#[tokio::main]
async fn main() {
    let (bootstrap, database_url) = (var("KAFKA_BOOTSTRAP_SERVERS"), var("DATABASE_URL"));
    let (topic, group) = (var("SEQUENCE_TOPIC"), var("CONSUMER_GROUP"));
    let concurrency = std::env::var("CONSUMER_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CONCURRENCY);
    let pool = match PgPool::connect(&database_url).await {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("sequence-consumer: connect {database_url}: {e}");
            std::process::exit(2)
        }
    };
    let settings = ConsumerSettings::new(&bootstrap, &group, &topic).with_concurrency(concurrency);
    let consumer = match MessageConsumer::new(settings, ApplySteps { pool, group }) {
        Ok(consumer) => consumer,
        Err(e) => {
            eprintln!("sequence-consumer: {e}");
            std::process::exit(2)
        }
    };
    let shutdown = Shutdown::default();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        lifecycle::shutdown_signal().await;
        on_signal.trigger();
    });
    consumer.run(shutdown).await;
}
