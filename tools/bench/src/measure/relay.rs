//! Relay events/s against a raw producer, in both relay modes.
//!
//! The relay: `outbox::Relay` — the code both services run — with the services'
//! default configuration, draining a prefilled outbox of `OrderCreated` rows into a
//! 6-partition, 3-replica topic. The ceiling: a raw rdkafka producer with the very same
//! settings (`kafka_config::ProducerSettings::reliable`: acks=all, idempotent, lz4,
//! linger 5 ms), same keys, payloads and headers, to the same brokers, every message in
//! flight at once.
//!
//! The relay drains the outbox in each mode (`RELAY_MODE`): streaming (as deployed:
//! claims keep flowing while sends await their acks, acks marked as they arrive, at
//! most `RELAY_MAX_IN_FLIGHT` rows in flight, also swept over a few bounds), in waves
//! with the default number of passes in flight, and in waves with one pass in flight
//! (`RELAY_CONCURRENCY=1`: claim, send, await every ack, mark, then the next pass).
//! Every producer is connected (metadata, idempotent producer id) before its clock
//! starts, so that a short run measures sending, not connecting.
//!
//! Where one wave's time goes is measured, not guessed, by taking it apart: claims
//! alone (`Relay::claim` on a fresh batch of rows), and the raw producer sending in
//! waves of one claim batch, each wave awaited before the next — the wave's send
//! pattern, with each wave's ack wait recorded (p50/p99). What is left of a pass is
//! marking the batch sent. The ack wait itself is explained by one `acks=all` produce
//! request on this cluster: one record, awaited before the next (p50/p99).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::future::join_all;
use lifecycle::Shutdown;
use outbox::{Relay, RelayConfig, RelayMode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;
use sqlx::PgPool;

use crate::events::BenchEvent;
use crate::stats::Percentiles;
use crate::{Settings, progress, stack};

/// The bounds of rows in flight the streaming relay is also measured with.
const IN_FLIGHT_SWEEP: [usize; 3] = [200, 1_000, 5_000];
/// Produce requests timed one at a time for the `acks=all` latency.
const SINGLE_REQUESTS: usize = 300;

#[derive(Debug, Clone, Serialize)]
pub struct RelayResult {
    pub events: usize,
    pub payload_bytes: usize,
    pub batch_size: i64,
    /// Wave mode: passes in flight, as deployed (`RelayConfig::concurrency`'s default).
    pub concurrency: usize,
    /// Stream mode: rows in flight at most, as deployed (`RELAY_MAX_IN_FLIGHT`).
    pub max_in_flight: usize,
    /// The relay as deployed: streaming.
    pub stream_events_per_s: f64,
    /// The streaming relay with other bounds of rows in flight: (bound, events/s).
    pub stream_sweep: Vec<(usize, f64)>,
    /// Wave mode with `concurrency` passes in flight.
    pub wave_events_per_s: f64,
    /// Wave mode with one pass in flight: passes strictly one after another.
    pub one_lane_events_per_s: f64,
    /// Every message in flight at once: the ceiling.
    pub raw_pipelined_per_s: f64,
    /// Waves of `batch_size` messages, each awaited: the wave's send pattern.
    pub raw_waves_per_s: f64,
    /// Each raw wave of `batch_size`, sent → last ack, in ms.
    pub wave_ack_ms: Percentiles,
    /// One `acks=all` produce request (one record, linger 0, awaited before the next),
    /// sent → ack, in ms.
    pub single_request_ms: Percentiles,
    /// `Relay::claim` alone.
    pub claim_only_rows_per_s: f64,
    /// `stream_events_per_s / raw_pipelined_per_s` (target ≥ 0.40).
    pub ratio: f64,
    /// `wave_events_per_s / raw_pipelined_per_s`.
    pub wave_ratio: f64,
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
    let (batch_size, concurrency, max_in_flight) = (
        deployed.batch_size,
        deployed.concurrency,
        deployed.max_in_flight,
    );
    let mut wave = deployed.clone();
    wave.mode = RelayMode::Wave;
    let mut one_lane = wave.clone();
    one_lane.concurrency = 1;
    let one_lane_events_per_s = drain(settings, &pool, &topic, n, one_lane).await?;
    let wave_events_per_s = drain(settings, &pool, &topic, n, wave).await?;
    let stream_events_per_s = drain(settings, &pool, &topic, n, deployed.clone()).await?;
    let mut stream_sweep = Vec::new();
    for bound in IN_FLIGHT_SWEEP {
        let mut config = deployed.clone();
        config.max_in_flight = bound;
        stream_sweep.push((bound, drain(settings, &pool, &topic, n, config).await?));
    }
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
    let raw = connected_producer(settings, &topic).await?;
    let started = Instant::now();
    send_all(&raw, &topic, &events).await?;
    let raw_pipelined_per_s = n as f64 / started.elapsed().as_secs_f64();

    progress(&format!("relay: raw producer, waves of {batch_size}"));
    let raw = connected_producer(settings, &topic).await?;
    let mut wave_ms = Vec::new();
    let started = Instant::now();
    for wave in events.chunks(usize::try_from(batch_size).unwrap_or(200)) {
        let sent = Instant::now();
        send_all(&raw, &topic, wave).await?;
        wave_ms.push(sent.elapsed().as_secs_f64() * 1e3);
    }
    let raw_waves_per_s = n as f64 / started.elapsed().as_secs_f64();

    let single_request_ms = single_requests(settings, &topic, &events).await?;

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
        max_in_flight,
        stream_events_per_s,
        stream_sweep,
        wave_events_per_s,
        one_lane_events_per_s,
        raw_pipelined_per_s,
        raw_waves_per_s,
        wave_ack_ms: Percentiles::of(&wave_ms),
        single_request_ms,
        claim_only_rows_per_s,
        ratio: stream_events_per_s / raw_pipelined_per_s,
        wave_ratio: wave_events_per_s / raw_pipelined_per_s,
        pass_ms: PassStages {
            total,
            claim,
            publish,
            mark_and_rest: total - claim - publish,
        },
    })
}

/// One `acks=all` produce request at a time: one record, its ack awaited before the
/// next is sent, `linger.ms` 0 so that the wait is the request's own (the leader
/// writes, the followers fetch, the leader answers once `min.insync.replicas` have it).
async fn single_requests(
    settings: &Settings,
    topic: &str,
    events: &[BenchEvent],
) -> anyhow::Result<Percentiles> {
    progress(&format!(
        "relay: {SINGLE_REQUESTS} single acks=all produce requests, one at a time"
    ));
    let mut unlingered =
        kafka_config::ProducerSettings::reliable(&settings.kafka_bootstrap_servers);
    unlingered.linger_ms = 0;
    let producer: FutureProducer = unlingered
        .client_config()
        .create()
        .context("creating the producer")?;
    send_all(&producer, topic, &events[..1]).await?;
    let mut ms = Vec::with_capacity(SINGLE_REQUESTS);
    for event in events.iter().cycle().take(SINGLE_REQUESTS) {
        let sent = Instant::now();
        send_all(&producer, topic, std::slice::from_ref(event)).await?;
        ms.push(sent.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Percentiles::of(&ms))
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
    let how = match config.mode {
        RelayMode::Stream => format!("streaming, at most {} rows in flight", config.max_in_flight),
        RelayMode::Wave => format!("in waves, {} pass(es) in flight", config.concurrency),
    };
    progress(&format!("relay: filling the outbox with {n} rows"));
    let events: Vec<BenchEvent> = (0..n as u64).map(BenchEvent::new).collect();
    fill_outbox(pool, topic, &events).await?;
    progress(&format!("relay: draining the outbox, {how}"));
    let relay = Relay::new(
        pool.clone(),
        connected_producer(settings, topic).await?,
        config,
    );
    let started = Instant::now();
    let stop = Shutdown::default();
    let task = tokio::spawn(relay.run(stop.clone()));
    wait_all_sent(pool, Duration::from_secs(300)).await?;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    stop.trigger();
    task.await?;
    progress(&format!("relay: {rate:.0} events/s {how}"));
    Ok(rate)
}

fn producer(settings: &Settings) -> anyhow::Result<FutureProducer> {
    kafka_config::ProducerSettings::reliable(&settings.kafka_bootstrap_servers)
        .client_config()
        .create()
        .context("creating the producer")
}

/// A producer that has sent one record to `topic` and had it acked: connected to the
/// leaders, topic metadata and idempotent producer id in hand.
async fn connected_producer(settings: &Settings, topic: &str) -> anyhow::Result<FutureProducer> {
    let producer = producer(settings)?;
    send_all(&producer, topic, &[BenchEvent::new(0)]).await?;
    Ok(producer)
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
