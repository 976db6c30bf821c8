//! End-to-end latency at fixed rates — order accepted → payment applied — with the
//! relay woken by `LISTEN/NOTIFY` and with polling only (`RELAY_LISTEN_NOTIFY=false`,
//! the relay's `RELAY_POLL_MS` period: the study note's "the scheduled job adds
//! latency"). Also the RSS of both services, idle and under this load.
//!
//! "Accepted" is the moment the client has the `201` (wall clock). "Applied" is when
//! payment-service wrote the outcome row into its outbox — the last statement of the
//! payment's transaction, `created_at = clock_timestamp()`, just before its commit.
//! Both clocks are this machine's. Per order the run also reads when order-service's
//! relay marked the event sent (after the broker's ack), which splits the latency into
//! a relay stage (accepted → acked and marked) and a consume stage (→ applied).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::http_load::{self, FixedRate};
use crate::services::{Chain, RssSampler, start_chain};
use crate::stats::Percentiles;
use crate::{Settings, progress, stack};
use anyhow::Context;

/// The relay's poll period in the polling-only runs: the services' default.
pub const POLL_MS: u64 = 500;
/// Requests waiting at once before the generator drops sends (the service is saturated).
const MAX_IN_FLIGHT: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wake {
    Notify,
    PollOnly,
}

impl Wake {
    pub fn label(self) -> &'static str {
        match self {
            Wake::Notify => "notify",
            Wake::PollOnly => "poll-only",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct E2ePoint {
    pub wake: Wake,
    pub target_rate: u32,
    /// Orders created per second of sending.
    pub achieved_rate: f64,
    pub created: usize,
    pub failed: usize,
    pub dropped: u64,
    /// Created orders without a payment when the settle wait ended.
    pub unsettled: usize,
    pub http_ms: Percentiles,
    pub e2e_ms: Percentiles,
    pub relay_stage_ms: Percentiles,
    pub consume_stage_ms: Percentiles,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Memory {
    pub order_service_idle_kib: u64,
    pub order_service_load_kib: u64,
    pub payment_service_idle_kib: u64,
    pub payment_service_load_kib: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct E2eResult {
    pub poll_ms: u64,
    /// Half of the chain's measured saturation rate, when the run measured it: the rate
    /// of the latency target (NOTIFY only).
    pub half_saturation_rate: Option<u32>,
    pub seconds_per_rate: u64,
    pub points: Vec<E2ePoint>,
    /// Both services, relay woken by NOTIFY: idle after start, peak over every rate.
    pub memory: Memory,
}

impl E2eResult {
    pub fn point(&self, wake: Wake, rate: u32) -> Option<&E2ePoint> {
        self.points
            .iter()
            .find(|p| p.wake == wake && p.target_rate == rate)
    }
}

/// `half_saturation_rate`: measured at, with NOTIFY (as deployed), besides
/// `BENCH_RATES`; polling only runs `BENCH_RATES` alone (its lesson is the low rates).
pub async fn measure(
    settings: &Settings,
    half_saturation_rate: Option<u32>,
) -> anyhow::Result<E2eResult> {
    let mut points = Vec::new();
    let mut memory = Memory::default();
    for wake in [Wake::Notify, Wake::PollOnly] {
        let mut rates = settings.rates.clone();
        if wake == Wake::Notify
            && let Some(half) = half_saturation_rate.filter(|r| *r > 0)
        {
            rates.push(half);
            rates.sort_unstable();
            rates.dedup();
        }
        let (mode_points, mode_memory) = run_mode(settings, wake, &rates).await?;
        points.extend(mode_points);
        if wake == Wake::Notify {
            memory = mode_memory;
        }
    }
    Ok(E2eResult {
        poll_ms: POLL_MS,
        half_saturation_rate,
        seconds_per_rate: settings.seconds,
        points,
        memory,
    })
}

async fn run_mode(
    settings: &Settings,
    wake: Wake,
    rates: &[u32],
) -> anyhow::Result<(Vec<E2ePoint>, Memory)> {
    let tag = format!("e2e_{}", wake.label().replace('-', "_"));
    let wake_env = vec![
        ("RELAY_LISTEN_NOTIFY", (wake == Wake::Notify).to_string()),
        ("RELAY_POLL_MS", POLL_MS.to_string()),
    ];
    progress(&format!("e2e ({}): starting both services", wake.label()));
    let Chain {
        order,
        payment,
        orders_url,
        payments_url,
    } = start_chain(settings, &tag, true, &wake_env).await?;
    let payment = payment.context("payment-service was started")?;
    let mut memory = Memory {
        order_service_idle_kib: order.rss_kib().unwrap_or(0),
        payment_service_idle_kib: payment.rss_kib().unwrap_or(0),
        ..Memory::default()
    };
    let orders_db = stack::pool(&orders_url, 2).await?;
    let payments_db = stack::pool(&payments_url, 2).await?;
    let client = http_load::client();
    let sampler = RssSampler::start(vec![order.pid(), payment.pid()]);
    let mut points = Vec::new();
    let mut first_index = 0;
    for &rate in rates {
        progress(&format!(
            "e2e ({}): {rate} orders/s for {}s",
            wake.label(),
            settings.seconds
        ));
        let run = http_load::fixed_rate(
            &client,
            &order.base_url(),
            rate,
            Duration::from_secs(settings.seconds),
            MAX_IN_FLIGHT,
            first_index,
        )
        .await;
        first_index += run.samples.len() as u64 + run.dropped;
        let point = settle_and_measure(wake, rate, &run, &orders_db, &payments_db).await?;
        progress(&format!(
            "e2e ({}): {rate}/s → achieved {:.0}/s, e2e p50 {:.1} ms, p99 {:.1} ms",
            wake.label(),
            point.achieved_rate,
            point.e2e_ms.p50,
            point.e2e_ms.p99
        ));
        points.push(point);
    }
    let peaks = sampler.finish().await;
    memory.order_service_load_kib = peaks.first().copied().unwrap_or(0);
    memory.payment_service_load_kib = peaks.get(1).copied().unwrap_or(0);
    orders_db.close().await;
    payments_db.close().await;
    order.stop().await?;
    payment.stop().await?;
    Ok((points, memory))
}

/// Waits until every created order has its payment (at most 60 s plus 40 ms per order,
/// capped at 4 minutes: a rate above the consumer's drains a backlog first), then
/// computes the latencies from the two databases.
async fn settle_and_measure(
    wake: Wake,
    rate: u32,
    run: &FixedRate,
    orders_db: &PgPool,
    payments_db: &PgPool,
) -> anyhow::Result<E2ePoint> {
    let accepted: HashMap<String, (DateTime<Utc>, f64)> = run
        .created()
        .filter_map(|s| {
            Some((
                s.order_id?.to_string(),
                (s.accepted_at, s.latency.as_secs_f64() * 1e3),
            ))
        })
        .collect();
    let keys: Vec<String> = accepted.keys().cloned().collect();
    let wait = Duration::from_secs(60) + Duration::from_millis(40 * keys.len() as u64);
    let deadline = Instant::now() + wait.min(Duration::from_secs(240));
    let applied: Vec<(String, DateTime<Utc>)> = loop {
        // The payment's outcome row: written last in the payment's transaction.
        let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT message_key, created_at FROM outbox WHERE message_key = ANY($1)",
        )
        .bind(&keys)
        .fetch_all(payments_db)
        .await?;
        if rows.len() >= keys.len() || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let sent: HashMap<String, DateTime<Utc>> = sqlx::query_as(
        "SELECT message_key, sent_at FROM outbox WHERE message_key = ANY($1) AND sent_at IS NOT NULL",
    )
    .bind(&keys)
    .fetch_all(orders_db)
    .await?
    .into_iter()
    .collect();

    let ms = |from: DateTime<Utc>, to: DateTime<Utc>| {
        (to - from).num_microseconds().unwrap_or(0) as f64 / 1e3
    };
    let (mut e2e, mut relay_stage, mut consume_stage) = (Vec::new(), Vec::new(), Vec::new());
    for (key, applied_at) in &applied {
        let Some((accepted_at, _)) = accepted.get(key) else {
            continue;
        };
        e2e.push(ms(*accepted_at, *applied_at));
        if let Some(sent_at) = sent.get(key) {
            relay_stage.push(ms(*accepted_at, *sent_at));
            consume_stage.push(ms(*sent_at, *applied_at));
        }
    }
    let http: Vec<f64> = accepted.values().map(|(_, latency)| *latency).collect();
    Ok(E2ePoint {
        wake,
        target_rate: rate,
        achieved_rate: accepted.len() as f64 / run.seconds.max(f64::EPSILON),
        created: accepted.len(),
        failed: run.samples.len() - accepted.len(),
        dropped: run.dropped,
        unsettled: keys.len().saturating_sub(applied.len()),
        http_ms: Percentiles::of(&http),
        e2e_ms: Percentiles::of(&e2e),
        relay_stage_ms: Percentiles::of(&relay_stage),
        consume_stage_ms: Percentiles::of(&consume_stage),
    })
}
