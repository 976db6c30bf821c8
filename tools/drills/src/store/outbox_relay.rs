//! **The outbox relay through the store-stage faults**: orders placed while the cluster
//! is broken all end published, once each, after it recovers.
//!
//! The project's own relay (`outbox::Relay`, `acks=all`, idempotent producer) runs
//! against the drill cluster and a scratch database. Orders are written into the outbox
//! (each in its own transaction, as order-service does) before and during a fault:
//! - **leader failover** (drill 1's fault): followers frozen, leader `kill -9`ed;
//! - **two brokers stopped** (drill 2's fault): the leader refuses with
//!   `NOT_ENOUGH_REPLICAS`, the relay puts the rows back and retries.
//!
//! After recovery every row must be `SENT`, and the topic must hold every event id —
//! counted by the `event-id` header, so a copy would show as a duplicate.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kafka_config::ProducerSettings;
use lifecycle::Shutdown;
use outbox::{OutboxMessage, Relay, RelayConfig};
use sqlx::PgPool;
use test_support::TestDatabase;

use crate::cluster::DrillCluster;
use crate::error::DrillError;
use crate::store::replication::{
    Outcome, count_copies, join_notes, wait_for_isr, wait_for_new_leader, wait_in_sync,
};

/// The fault the relay goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    LeaderFailover,
    TwoBrokersStopped,
}

/// Runs the relay through `fault` with `count` orders written during it (and `count`
/// before). `postgres_server` is where the scratch database is created.
pub async fn relay_through(
    cluster: &DrillCluster,
    postgres_server: &str,
    fault: Fault,
    count: usize,
) -> Result<Outcome, DrillError> {
    let bootstrap = cluster.bootstrap_servers();
    let topic = format!("outbox-{}-{}", fault_name(fault), std::process::id());
    kafka_config::create_topic(&bootstrap, &topic, 1, 3)
        .await
        .map_err(DrillError::unexpected)?;
    let (leader, followers) = wait_in_sync(&bootstrap, &topic).await?;

    let db = TestDatabase::create_on(postgres_server).await;
    let pool = db.pool().await;
    outbox::MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| DrillError::Unexpected(format!("outbox migrations: {e}")))?;
    // The project's relay and producer, with an 8 s delivery timeout so that a send the
    // fault swallows is reported (and retried by the relay) within the drill's patience.
    let mut settings = ProducerSettings::reliable(&bootstrap);
    settings.delivery_timeout_ms = 8_000;
    let producer = settings
        .client_config()
        .create()
        .map_err(|e| DrillError::Unexpected(format!("producer: {e}")))?;
    let mut config = RelayConfig::new("drill-relay");
    config.poll_interval = Duration::from_millis(100);
    let stop = Shutdown::default();
    let relay = tokio::spawn(Relay::new(pool.clone(), producer, config).run(stop.clone()));

    write_orders(&pool, &topic, "before", count).await?;
    wait_all_sent(&pool, Duration::from_secs(60)).await?;

    let mut notes = Vec::new();
    match fault {
        Fault::LeaderFailover => {
            for f in &followers {
                cluster.node("freeze", *f)?;
            }
            // As in drill 1: let fetches that were waiting at the leader expire first.
            tokio::time::sleep(Duration::from_secs(2)).await;
            write_orders(&pool, &topic, "during", count).await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            notes.push(Some(format!(
                "{} rows unsent when the leader was killed",
                unsent(&pool).await?
            )));
            cluster.node("kill", leader)?;
            for f in &followers {
                cluster.node("thaw", *f)?;
            }
            wait_for_new_leader(&bootstrap, &topic, leader).await?;
            cluster.node("start", leader)?;
        }
        Fault::TwoBrokersStopped => {
            for f in &followers {
                cluster.node("stop", *f)?;
            }
            wait_for_isr(&bootstrap, &topic, &[leader]).await?;
            write_orders(&pool, &topic, "during", count).await?;
            // Long enough for every row to be tried and refused at least once.
            tokio::time::sleep(Duration::from_secs(12)).await;
            notes.push(Some(format!(
                "{} rows unsent while 2 brokers were down",
                unsent(&pool).await?
            )));
            notes.push(last_error(&pool).await?.map(|e| format!("relay saw: {e}")));
            for f in &followers {
                cluster.node("start", *f)?;
            }
        }
    }
    let recovered_at = Instant::now();
    wait_all_sent(&pool, Duration::from_secs(120)).await?;
    notes.push(Some(format!(
        "all SENT {:.0}s after recovery",
        recovered_at.elapsed().as_secs_f64()
    )));
    stop.trigger();
    relay
        .await
        .map_err(|e| DrillError::Unexpected(format!("relay task: {e}")))?;
    wait_in_sync(&bootstrap, &topic).await?;

    let retried: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE attempts > 1")
        .fetch_one(&pool)
        .await
        .map_err(DrillError::unexpected)?;
    notes.push(Some(format!("{retried} rows needed more than one send")));
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .map_err(DrillError::unexpected)?;
    let sent_ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM outbox WHERE state = 'SENT'")
            .fetch_all(&pool)
            .await
            .map_err(DrillError::unexpected)?;
    let copies = copies_by_event_id(&bootstrap, &topic).await?;
    pool.close().await;
    drop(db);

    Ok(Outcome {
        drill: match fault {
            Fault::LeaderFailover => "outbox relay through leader failover",
            Fault::TwoBrokersStopped => "outbox relay through 2 of 3 brokers stopped",
        },
        setting: "relay: acks=all, idempotent".to_owned(),
        attempted: usize::try_from(written).unwrap_or_default(),
        acknowledged: sent_ids.len(),
        read_back: copies.len(),
        lost_acknowledged: sent_ids
            .iter()
            .filter(|id| !copies.contains_key(&id.to_string()))
            .count(),
        duplicates: copies.values().map(|c| c - 1).sum(),
        note: join_notes(&notes),
        safe: true,
    })
}

fn fault_name(fault: Fault) -> &'static str {
    match fault {
        Fault::LeaderFailover => "failover",
        Fault::TwoBrokersStopped => "min-isr",
    }
}

/// `count` orders, each in its own transaction with its outbox row (distinct keys: the
/// relay sends them in parallel).
async fn write_orders(
    pool: &PgPool,
    topic: &str,
    phase: &str,
    count: usize,
) -> Result<(), DrillError> {
    for i in 0..count {
        let order_id = format!("{phase}-{i}");
        let message = OutboxMessage::new(
            topic,
            order_id.clone(),
            "OrderCreated",
            serde_json::json!({ "order_id": order_id }),
        );
        let mut tx = pool.begin().await.map_err(DrillError::unexpected)?;
        outbox::enqueue(&mut tx, &message)
            .await
            .map_err(DrillError::unexpected)?;
        tx.commit().await.map_err(DrillError::unexpected)?;
    }
    Ok(())
}

async fn unsent(pool: &PgPool) -> Result<i64, DrillError> {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE state <> 'SENT'")
        .fetch_one(pool)
        .await
        .map_err(DrillError::unexpected)
}

async fn last_error(pool: &PgPool) -> Result<Option<String>, DrillError> {
    sqlx::query_scalar(
        "SELECT last_error FROM outbox WHERE last_error IS NOT NULL ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .map_err(DrillError::unexpected)
}

async fn wait_all_sent(pool: &PgPool, within: Duration) -> Result<(), DrillError> {
    let deadline = Instant::now() + within;
    loop {
        let left = unsent(pool).await?;
        if left == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let failed: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE state = 'FAILED'")
                    .fetch_one(pool)
                    .await
                    .map_err(DrillError::unexpected)?;
            return Err(DrillError::Timeout(format!(
                "{left} outbox rows still unsent after {within:?} ({failed} FAILED)"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The topic's records counted by their `event-id` header (the outbox row id).
async fn copies_by_event_id(
    bootstrap: &str,
    topic: &str,
) -> Result<HashMap<String, usize>, DrillError> {
    count_copies(bootstrap, topic, |r| {
        r.header(kafka_config::headers::EVENT_ID).map(str::to_owned)
    })
    .await
}
