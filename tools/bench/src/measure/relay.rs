//! Relay events/s against a raw producer.
//!
//! The relay: `outbox::Relay` — the code both services run — with the services'
//! default configuration, draining a prefilled outbox of `OrderCreated` rows into a
//! 6-partition, 3-replica topic. The ceiling: a raw rdkafka producer with the very same
//! settings (`kafka_config::ProducerSettings::reliable`: acks=all, idempotent, lz4,
//! linger 5 ms), same keys, payloads and headers, to the same brokers, every message in
//! flight at once.
//!
//! The relay drains the outbox twice: with one pass in flight (`RELAY_CONCURRENCY=1`:
//! claim, send, await every ack, mark, then the next pass) and with the default number
//! of passes in flight. Where one pass's time goes is measured, not guessed, by taking
//! it apart: claims alone (`Relay::claim` on a fresh batch of rows), and the raw
//! producer sending in waves of one claim batch, each wave awaited before the next —
//! the relay's send pattern. What is left of a pass is marking the batch sent.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::future::join_all;
use outbox::{Relay, RelayConfig};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;
use service_runtime::Shutdown;
use sqlx::PgPool;

use crate::events::BenchEvent;
use crate::{Settings, progress, stack};

#[derive(Debug, Clone, Serialize)]
pub struct RelayResult {
    pub events: usize,
    pub payload_bytes: usize,
    pub batch_size: i64,
    /// Passes in flight, as deployed (`RelayConfig::concurrency`'s default).
    pub concurrency: usize,
    /// The relay as deployed.
    pub relay_events_per_s: f64,
    /// The relay with one pass in flight: passes strictly one after another.
    pub one_lane_events_per_s: f64,
    /// Every message in flight at once: the ceiling.
    pub raw_pipelined_per_s: f64,
    /// Waves of `batch_size` messages, each awaited: the relay's send pattern.
    pub raw_waves_per_s: f64,
    /// `Relay::claim` alone.
    pub claim_only_rows_per_s: f64,
    /// `relay_events_per_s / raw_pipelined_per_s` (target ≥ 0.60).
    pub ratio: f64,
    /// One pass of `batch_size` rows with one lane, in ms: claim, publish (awaited),
    /// and the rest (marking the batch sent).
    pub pass_ms: PassStages,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct PassStages {
    pub total: f64,
    pub claim: f64,
    pub publish: f64,
    pub mark_and_rest: f64,
}

pub async fn measure(settings: &Settings) -> anyhow::Result<RelayResult> {
    let n = settings.relay_events;
    let url = stack::fresh_database(settings, &settings.name("relay")).await?;
    let pool = stack::pool(&url, 10).await?;
    outbox::MIGRATOR.run(&pool).await?;
    let topic = stack::create_topic(settings, &settings.name("relay_events")).await?;
    let events: Vec<BenchEvent> = (0..n as u64).map(BenchEvent::new).collect();
    let payload_bytes = events.first().map_or(0, |e| e.payload_bytes().len());

    let deployed = RelayConfig::new("bench-relay");
    let (batch_size, concurrency) = (deployed.batch_size, deployed.concurrency);
    let mut one_lane = deployed.clone();
    one_lane.concurrency = 1;
    let one_lane_events_per_s = drain(settings, &pool, &topic, n, one_lane).await?;
    let relay_events_per_s = drain(settings, &pool, &topic, n, deployed.clone()).await?;
    let relay = Relay::new(pool.clone(), producer(settings)?, deployed);

    // Claims alone, on fresh rows (the drained ones are SENT, so they are not claimed).
    let claim_rows = n.min(5_000);
    let fresh: Vec<BenchEvent> = (0..claim_rows as u64).map(BenchEvent::new).collect();
    fill_outbox(&pool, &topic, &fresh).await?;
    let started = Instant::now();
    let mut claimed = 0;
    loop {
        let rows = relay.claim().await?;
        if rows.is_empty() {
            break;
        }
        claimed += rows.len();
    }
    let claim_only_rows_per_s = claimed as f64 / started.elapsed().as_secs_f64();
    pool.close().await;

    progress("relay: raw producer, everything in flight");
    let raw = producer(settings)?;
    let started = Instant::now();
    send_all(&raw, &topic, &events).await?;
    let raw_pipelined_per_s = n as f64 / started.elapsed().as_secs_f64();

    progress(&format!("relay: raw producer, waves of {batch_size}"));
    let raw = producer(settings)?;
    let started = Instant::now();
    for wave in events.chunks(usize::try_from(batch_size).unwrap_or(200)) {
        send_all(&raw, &topic, wave).await?;
    }
    let raw_waves_per_s = n as f64 / started.elapsed().as_secs_f64();

    let per_pass = |rate: f64| batch_size as f64 / rate * 1e3;
    let (total, claim, publish) = (
        per_pass(one_lane_events_per_s),
        per_pass(claim_only_rows_per_s),
        per_pass(raw_waves_per_s),
    );
    Ok(RelayResult {
        events: n,
        payload_bytes,
        batch_size,
        concurrency,
        relay_events_per_s,
        one_lane_events_per_s,
        raw_pipelined_per_s,
        raw_waves_per_s,
        claim_only_rows_per_s,
        ratio: relay_events_per_s / raw_pipelined_per_s,
        pass_ms: PassStages {
            total,
            claim,
            publish,
            mark_and_rest: total - claim - publish,
        },
    })
}

/// Fills the outbox with `n` new events, then runs `outbox::Relay` with `config` until every
/// row is sent; returns events/s.
async fn drain(
    settings: &Settings,
    pool: &PgPool,
    topic: &str,
    n: usize,
    config: RelayConfig,
) -> anyhow::Result<f64> {
    let lanes = config.concurrency;
    progress(&format!("relay: filling the outbox with {n} rows"));
    let events: Vec<BenchEvent> = (0..n as u64).map(BenchEvent::new).collect();
    fill_outbox(pool, topic, &events).await?;
    progress(&format!(
        "relay: draining the outbox, {lanes} pass(es) in flight"
    ));
    let relay = Relay::new(pool.clone(), producer(settings)?, config);
    let started = Instant::now();
    let stop = Shutdown::default();
    let task = tokio::spawn(relay.run(stop.clone()));
    wait_all_sent(pool, Duration::from_secs(300)).await?;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    stop.trigger();
    task.await?;
    progress(&format!(
        "relay: {rate:.0} events/s with {lanes} pass(es) in flight"
    ));
    Ok(rate)
}

fn producer(settings: &Settings) -> anyhow::Result<FutureProducer> {
    kafka_config::ProducerSettings::reliable(&settings.kafka_bootstrap_servers)
        .client_config()
        .create()
        .context("creating the producer")
}

/// Writes the rows the way order-service does (`outbox::enqueue`), 1,000 per transaction.
async fn fill_outbox(pool: &PgPool, topic: &str, events: &[BenchEvent]) -> anyhow::Result<()> {
    for chunk in events.chunks(1_000) {
        let mut tx = pool.begin().await?;
        for e in chunk {
            outbox::enqueue(&mut tx, &e.outbox_message(topic)).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

async fn wait_all_sent(pool: &PgPool, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE state <> 'SENT'")
            .fetch_one(pool)
            .await?;
        if unsent == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the relay left {unsent} rows unsent after {}s",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends every event and waits for every acknowledgement; an error fails the run.
pub async fn send_all(
    producer: &FutureProducer,
    topic: &str,
    events: &[BenchEvent],
) -> anyhow::Result<()> {
    let payloads: Vec<Vec<u8>> = events.iter().map(BenchEvent::payload_bytes).collect();
    let sends = events.iter().zip(&payloads).map(|(e, payload)| {
        let record = FutureRecord::to(topic)
            .key(&e.key)
            .payload(payload)
            .headers(e.kafka_headers());
        // A queue wait (not the relay's zero) so the ceiling is never cut short by a
        // full local queue.
        producer.send(record, Duration::from_secs(30))
    });
    let failed = join_all(sends)
        .await
        .into_iter()
        .filter(Result::is_err)
        .count();
    if failed > 0 {
        bail!("{failed} of {} raw sends failed", events.len());
    }
    Ok(())
}
