//! Consumer messages/s against its database ceiling, at several concurrencies.
//!
//! The consumer: payment-service (release) reading a topic prefilled with `OrderCreated`
//! events, as deployed (Redis fast path on, its outcome relay running), once per
//! `CONSUMER_CONCURRENCY` of the sweep (`BENCH_CONSUMER_SWEEP`, always with 1 and
//! `message_consumer::DEFAULT_CONCURRENCY`), then once more at the default with its
//! relay off (`RELAY_ENABLED=false`): the outcome events stay in the outbox, and the
//! difference is what relaying them costs the machine while it consumes. Each rate
//! comes from the payments written: (n − 1) / (last − first `created_at`), so start-up
//! and the group join do not count.
//!
//! The ceiling, per concurrency: pgbench doing, per message, what the handler does in
//! Postgres — the provider's charge (its own autocommit statement), then one
//! transaction: inbox record (`ON CONFLICT ... RETURNING (xmax = 0)`), payment row,
//! outcome row in the outbox — with as many clients as the consumer has handlers
//! (`-c N -j N`), against the database that drain just wrote. Not in the script: the
//! two Redis calls of the fast path and the Kafka fetch.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use crate::cpu::{CpuUse, CpuWindow};
use crate::events::BenchEvent;
use crate::measure::relay::send_all;
use crate::pgbench::{self, PgbenchResult};
use crate::services::{RssSampler, ServiceProcess, ServiceSpec};
use crate::{Settings, progress, stack};

/// One concurrency of the sweep: the consumer and its ceiling at that concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerPoint {
    pub concurrency: usize,
    /// Messages applied in the drain: fewer than `ConsumerResult::messages` when the
    /// drain's time bound ended it.
    pub applied: usize,
    pub messages_per_s: f64,
    /// pgbench with `concurrency` clients.
    pub pgbench: PgbenchResult,
    /// `messages_per_s / pgbench.tps` (target ≥ 0.60).
    pub ratio: f64,
    /// The drain's CPU: the machine, payment-service, Postgres, the brokers.
    pub cpu: CpuUse,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumerResult {
    pub messages: usize,
    /// `message_consumer::DEFAULT_CONCURRENCY` of the build measured.
    pub default_concurrency: usize,
    /// As deployed (outcome relay on), one point per concurrency, ascending.
    pub sweep: Vec<ConsumerPoint>,
    /// At the default concurrency, with the outcome relay off.
    pub relay_off_messages_per_s: f64,
    /// Peak RSS of payment-service draining at the default concurrency.
    pub rss_load_kib: u64,
}

impl ConsumerResult {
    pub fn at(&self, concurrency: usize) -> Option<&ConsumerPoint> {
        self.sweep.iter().find(|p| p.concurrency == concurrency)
    }

    /// The point at the default concurrency: the target's figure.
    pub fn deployed(&self) -> Option<&ConsumerPoint> {
        self.at(self.default_concurrency)
    }

    /// The sweep's fastest concurrency (messages/s).
    pub fn fastest(&self) -> Option<&ConsumerPoint> {
        self.sweep
            .iter()
            .max_by(|a, b| a.messages_per_s.total_cmp(&b.messages_per_s))
    }
}

/// One message's database work, as in payment-service's `payments.rs` and `provider.rs`.
pub fn dedup_payment_script(outcome_payload: &str) -> String {
    format!(
        "\\set n random(1, 1000000000000000000)\n\
         \\set amount random(100, 999999)\n\
         INSERT INTO provider_charges (idempotency_key, amount_minor, currency, outcome, reason) \
         VALUES ('order-' || :n, :amount, 'EUR', 'APPROVED', NULL) \
         ON CONFLICT (idempotency_key) DO UPDATE SET calls = provider_charges.calls + 1 \
         RETURNING outcome, reason;\n\
         BEGIN;\n\
         INSERT INTO inbox (consumer_group, message_id, topic, kafka_partition, kafka_offset) \
         VALUES ('pgbench', md5('e' || :n)::uuid, 'order-events', 0, :n) \
         ON CONFLICT (consumer_group, message_id) \
         DO UPDATE SET duplicate_deliveries = inbox.duplicate_deliveries + 1 \
         RETURNING (xmax = 0) AS inserted;\n\
         INSERT INTO payments (id, order_id, amount_minor, currency, status) \
         VALUES (gen_random_uuid(), md5('o' || :n)::uuid, :amount, 'EUR', 'SUCCEEDED') \
         ON CONFLICT (order_id) DO NOTHING;\n\
         INSERT INTO outbox (id, aggregate_id, topic, message_key, event_type, payload, headers) \
         VALUES (gen_random_uuid(), 'order-' || :n, 'payment-events', 'order-' || :n, \
         'PaymentSucceeded', '{outcome_payload}'::jsonb, '{{\"schema-version\": \"1\"}}'::jsonb);\n\
         END;\n"
    )
}

pub async fn measure(settings: &Settings) -> anyhow::Result<ConsumerResult> {
    let n = settings.consumer_messages;
    let default_concurrency = message_consumer::DEFAULT_CONCURRENCY;
    let topic = stack::create_topic(settings, &settings.name("consumer_order_events")).await?;
    progress(&format!("consumer: producing {n} OrderCreated events"));
    let events: Vec<BenchEvent> = (0..n as u64).map(BenchEvent::new).collect();
    let producer = kafka_config::ProducerSettings::reliable(&settings.kafka_bootstrap_servers)
        .client_config()
        .create()?;
    send_all(&producer, &topic, &events).await?;

    let outcome = serde_json::json!({
        "schema_version": 1,
        "order_id": uuid::Uuid::now_v7(),
        "payment_id": uuid::Uuid::now_v7(),
    });
    let script = dedup_payment_script(&outcome.to_string());
    let dir = settings.out_dir.join("pgbench");
    std::fs::create_dir_all(&dir)?;

    let mut sweep = Vec::new();
    let mut rss_load_kib = 0;
    for concurrency in sweep_concurrencies(&settings.consumer_sweep, default_concurrency) {
        let drained = drain(settings, &topic, n, concurrency, true).await?;
        if concurrency == default_concurrency {
            rss_load_kib = drained.rss_load_kib;
        }
        progress(&format!(
            "consumer: pgbench, the dedup + payment transaction, {concurrency} clients"
        ));
        let pgbench = pgbench::run(
            &drained.url,
            &script,
            &dir.join("consumer-dedup-payment.sql"),
            concurrency,
            settings.seconds,
        )
        .await?;
        progress(&format!(
            "consumer: concurrency {concurrency}: {:.0} messages/s, pgbench {:.0} tps",
            drained.rate, pgbench.tps
        ));
        sweep.push(ConsumerPoint {
            concurrency,
            applied: drained.applied,
            messages_per_s: drained.rate,
            ratio: drained.rate / pgbench.tps.max(f64::EPSILON),
            pgbench,
            cpu: drained.cpu,
        });
    }
    let relay_off = drain(settings, &topic, n, default_concurrency, false).await?;
    Ok(ConsumerResult {
        messages: n,
        default_concurrency,
        sweep,
        relay_off_messages_per_s: relay_off.rate,
        rss_load_kib,
    })
}

/// The sweep's concurrencies, ascending, always with 1 (the one-at-a-time baseline)
/// and the default (the target's figure).
pub fn sweep_concurrencies(asked: &[usize], default: usize) -> Vec<usize> {
    let mut all: Vec<usize> = asked.iter().copied().filter(|c| *c > 0).collect();
    all.extend([1, default]);
    all.sort_unstable();
    all.dedup();
    all
}

/// Longest drain: at most this long per concurrency, whatever was applied by then.
const DRAIN_WINDOW_S: u64 = 40;

struct Drained {
    /// Payments written (all `n` unless the window ended first).
    applied: usize,
    rate: f64,
    rss_load_kib: u64,
    cpu: CpuUse,
    url: String,
}

/// payment-service, in a database and consumer group of its own, drains the `n` events
/// of `topic` with `concurrency` handlers; returns messages/s, the peak RSS (KiB), the
/// CPU of the drain and the database's URL.
async fn drain(
    settings: &Settings,
    topic: &str,
    n: usize,
    concurrency: usize,
    relay: bool,
) -> anyhow::Result<Drained> {
    let tag = if relay {
        format!("consumer_c{concurrency}")
    } else {
        format!("consumer_c{concurrency}_relay_off")
    };
    let url = stack::fresh_database(settings, &settings.name(&tag)).await?;
    progress(&format!(
        "consumer: payment-service draining the topic, concurrency {concurrency}, relay {}",
        if relay { "on" } else { "off" }
    ));
    let service = ServiceProcess::start(
        settings,
        ServiceSpec {
            binary: "payment-service",
            label: format!("{}-payment-service", tag.replace('_', "-")),
            port: settings.port_base + 1,
            database_url: url.clone(),
            order_events_topic: topic.to_owned(),
            payment_events_topic: settings.name("consumer_payment_events"),
            consumer_group: settings.name(&tag),
            extra_env: vec![
                ("RELAY_ENABLED", relay.to_string()),
                ("CONSUMER_CONCURRENCY", concurrency.to_string()),
            ],
        },
    )
    .await?;
    let sampler = RssSampler::start(vec![service.pid()]);
    let cpu = CpuWindow::start(&[("payment-service", service.pid())]);
    let pool = stack::pool(&url, 2).await?;
    // Bounded in time, not only in count: a concurrency that stalls (it did: handlers
    // waiting on the pool) is measured over what it applied in the window, and the
    // sweep goes on, instead of one slow point ending the whole measurement.
    let window = Duration::from_secs(DRAIN_WINDOW_S);
    let deadline = Instant::now() + window;
    let mut applied: i64;
    loop {
        applied = sqlx::query_scalar("SELECT count(*) FROM payments")
            .fetch_one(&pool)
            .await?;
        if applied as usize >= n || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if applied < 2 {
        bail!("payment-service applied {applied} of {n} in {DRAIN_WINDOW_S} s");
    }
    let cpu = cpu.finish();
    let rss_load_kib = sampler.finish().await.first().copied().unwrap_or(0);
    let (count, span): (i64, f64) = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM max(created_at) - min(created_at))::float8 FROM payments",
    )
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    service.stop().await?;
    let rate = (count - 1).max(0) as f64 / span.max(f64::EPSILON);
    progress(&format!(
        "consumer: {rate:.0} messages/s, {count} of {n} applied ({})",
        cpu.describe()
    ));
    Ok(Drained {
        applied: count as usize,
        rate,
        rss_load_kib,
        cpu,
        url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_charges_then_writes_inbox_payment_and_outbox_in_one_transaction() {
        let s = dedup_payment_script("{}");
        let at = |what: &str| s.find(what).unwrap_or_else(|| panic!("{what} missing"));
        assert!(at("INSERT INTO provider_charges") < at("BEGIN;"));
        assert!(at("BEGIN;") < at("INSERT INTO inbox"));
        assert!(at("INSERT INTO inbox") < at("INSERT INTO payments"));
        assert!(at("INSERT INTO payments") < at("INSERT INTO outbox"));
        assert!(at("INSERT INTO outbox") < at("END;"));
    }

    #[test]
    fn the_sweep_always_holds_one_and_the_default_once_each_ascending() {
        assert_eq!(sweep_concurrencies(&[8, 4, 0, 8], 16), vec![1, 4, 8, 16]);
        assert_eq!(sweep_concurrencies(&[], 16), vec![1, 16]);
        assert_eq!(sweep_concurrencies(&[32, 1], 32), vec![1, 32]);
    }
}
