//! `make drills-scale-out`: N order-services (each with its relay) and M payment-services
//! in the same consumer groups, under k6 load; one instance of each is killed with
//! SIGKILL a third of the way in and started again at two thirds. Its outbox claims come
//! back when their lease runs out, its partitions move to the survivors and back.
//!
//! What must hold at the end, counted from the data:
//! - the reconciliation: every order k6 placed was accepted once, 0 lost, 0 applied
//!   twice, every accepted order PAID or PAYMENT_FAILED;
//! - per-key order on the topic and in the effects, over keys that carry several events
//!   each ([`key_order`]), published by the same relays and consumed by the same
//!   consumer loop, with a consumer of that loop killed too.
//!
//! Everything runs on databases, topics and groups of the drill's own; the only faults
//! are to the drill's own processes, never to the shared cluster or database.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use test_support::{TestDatabase, unique_name};

pub mod key_order;

use self::key_order::KeyOrderReport;
use crate::process::ServiceProcess;
use crate::settle::settle;
use crate::{DrillEnv, DrillError};
use crate::{k6, results_dir};

/// The drill's knobs; `from_env` reads them (the Makefile passes them through).
#[derive(Debug, Clone)]
pub struct ScaleOut {
    /// `ORDER_SERVICES`: order-service instances, each with its relay.
    pub order_services: usize,
    /// `PAYMENT_SERVICES`: payment-service instances (and sequence consumers).
    pub payment_services: usize,
    /// `RATE`: orders/s k6 offers, well below the chain's saturation.
    pub rate: u32,
    /// `DURATION` (seconds) of the k6 run.
    pub duration: Duration,
    /// `KEYS` × `EVENTS_PER_KEY`: the numbered events of the per-key order check.
    pub keys: usize,
    pub events_per_key: u32,
}

impl ScaleOut {
    pub fn from_env() -> Self {
        let n = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        Self {
            order_services: n("ORDER_SERVICES", 2) as usize,
            payment_services: n("PAYMENT_SERVICES", 2) as usize,
            rate: u32::try_from(n("RATE", 40)).unwrap_or(40),
            duration: Duration::from_secs(n("DURATION", 60)),
            keys: n("KEYS", 40) as usize,
            events_per_key: u32::try_from(n("EVENTS_PER_KEY", 8)).unwrap_or(8),
        }
    }
}

/// What the run showed.
#[derive(Debug)]
pub struct Outcome {
    pub settings: ScaleOut,
    /// k6's exit status (0: every order placed on some instance).
    pub k6_status: i32,
    /// Distinct orders k6 saw created, and requests that failed (to a killed instance)
    /// and were retried elsewhere with the same key.
    pub k6_orders: u64,
    pub k6_failed_requests: u64,
    pub k6_replayed: u64,
    /// Failed sends the order-services' relays retried (counters of the processes alive
    /// at the end: the killed one's are gone with it).
    pub relay_retries: u64,
    pub report: reconcile::Report,
    pub key_order: KeyOrderReport,
    /// What happened when, in seconds from the start of the load.
    pub timeline: Vec<(f64, String)>,
}

impl Outcome {
    pub fn holds(&self) -> bool {
        self.k6_status == 0
            && self.report.accepted == self.k6_orders
            && self.report.is_clean()
            && self.report.settled == self.report.accepted
            && self.key_order.holds()
    }
}

/// Runs the drill.
pub async fn run(settings: ScaleOut) -> Result<Outcome, DrillError> {
    let env = DrillEnv::create(None).await?;
    let sequence_topic = unique_name("drill-sequence");
    kafka_config::create_topic(&env.kafka_bootstrap_servers, &sequence_topic, 6, 3)
        .await
        .map_err(|e| DrillError::Setup(format!("create {sequence_topic}: {e}")))?;
    // The sequence consumers' effects and inbox, in a database of their own.
    let effects_db = TestDatabase::create().await;
    let effects = effects_db.pool().await;
    inbox::MIGRATOR
        .run(&effects)
        .await
        .map_err(|e| DrillError::Setup(format!("inbox migrations: {e}")))?;
    sqlx::query(key_order::EFFECTS_TABLE)
        .execute(&effects)
        .await
        .map_err(|e| DrillError::Setup(format!("sequence_effects: {e}")))?;
    let sequence_env: HashMap<String, String> = [
        (
            "KAFKA_BOOTSTRAP_SERVERS",
            env.kafka_bootstrap_servers.clone(),
        ),
        ("DATABASE_URL", effects_db.url.clone()),
        ("SEQUENCE_TOPIC", sequence_topic.clone()),
        ("CONSUMER_GROUP", unique_name("drill-sequence-consumer")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();

    // Instances: each on its own port; order-services each with a send log of its own.
    let order_env = |i: usize| {
        let mut vars = env.order_service_env();
        // Under k6 on two shared cores an ack can take seconds: a delivery timeout that
        // short would fail sends that then succeed on the retry, a copy each. The lease
        // (twice it) is what a killed relay's rows wait before the survivor takes them.
        vars.insert("RELAY_DELIVERY_TIMEOUT_MS".into(), "10000".into());
        vars.insert("RELAY_LEASE_MS".into(), "20000".into());
        let log = std::env::temp_dir().join(format!("{}-{i}.send.log", env.order_topic));
        vars.insert("SEND_LOG_PATH".into(), log.display().to_string());
        vars
    };
    let mut payments = Vec::new();
    for _ in 0..settings.payment_services {
        let mut p = ServiceProcess::spawn("payment-service", &env.payment_service_env(), None)?;
        p.wait_serving().await?;
        payments.push(Some(p));
    }
    let mut orders = Vec::new();
    for i in 0..settings.order_services {
        let mut o = ServiceProcess::spawn("order-service", &order_env(i), None)?;
        o.wait_serving().await?;
        orders.push(Some(o));
    }
    let mut sequence_consumers = Vec::new();
    for slot in 0..settings.payment_services {
        let slot = u16::try_from(slot).unwrap_or(0);
        sequence_consumers.push(Some(ServiceProcess::spawn_worker(
            "sequence-consumer",
            slot,
            &sequence_env,
        )?));
    }

    // The load: k6 over every order-service, and the numbered events beside it.
    let summary = results_dir().join("scale-out-k6-summary.json");
    let base_urls: Vec<String> = orders
        .iter()
        .flatten()
        .map(|o| o.base_url.clone())
        .collect();
    let k6_run = k6::start(
        "scale-out",
        &base_urls.join(","),
        settings.rate,
        settings.duration,
        &[],
        &summary,
    )?;
    let started = Instant::now();
    let at = |started: Instant| started.elapsed().as_secs_f64();
    let mut timeline = vec![(
        0.0,
        format!(
            "k6 starts: {} orders/s for {} s over {} order-services; {} payment-services and {} sequence consumers",
            settings.rate,
            settings.duration.as_secs(),
            settings.order_services,
            settings.payment_services,
            settings.payment_services
        ),
    )];
    let writers = {
        let (pool, topic) = (env.orders_pool().await, sequence_topic.clone());
        let (keys, events) = (settings.keys, settings.events_per_key);
        // The keys start over the whole run, so some are mid-sequence at the kills.
        let spread = settings.duration;
        tokio::spawn(async move {
            key_order::write_sequences(&pool, &topic, keys, events, spread).await
        })
    };

    // The kills, a third of the way in; the restarts, on the same ports, at two thirds.
    tokio::time::sleep(settings.duration / 3).await;
    let order_port = kill9(&mut orders[0]);
    timeline.push((
        at(started),
        format!("kill -9 order-service :{order_port} (its relay with it)"),
    ));
    let payment_port = kill9(&mut payments[0]);
    timeline.push((
        at(started),
        format!("kill -9 payment-service :{payment_port}"),
    ));
    kill9(&mut sequence_consumers[0]);
    timeline.push((at(started), "kill -9 sequence-consumer 0".into()));
    tokio::time::sleep(settings.duration / 3).await;
    orders[0] = Some(ServiceProcess::spawn_on(
        order_port,
        "order-service",
        &order_env(0),
        None,
    )?);
    payments[0] = Some(ServiceProcess::spawn_on(
        payment_port,
        "payment-service",
        &env.payment_service_env(),
        None,
    )?);
    sequence_consumers[0] = Some(ServiceProcess::spawn_worker(
        "sequence-consumer",
        0,
        &sequence_env,
    )?);
    timeline.push((
        at(started),
        "the three killed instances start again (same ports)".into(),
    ));

    // The end of the load, then the settling.
    let k6_status = k6::wait(k6_run).await?;
    timeline.push((at(started), format!("k6 ends (exit {k6_status})")));
    writers.await.map_err(DrillError::unexpected)??;
    timeline.push((at(started), "every numbered event enqueued".into()));
    settle(&env, crate::matrix::QUIET).await?;
    let expected = (settings.keys as u64) * u64::from(settings.events_per_key);
    wait_for_effects(&effects, expected, crate::matrix::QUIET).await;
    timeline.push((at(started), "settled".into()));

    let report = env.reconcile().await?;
    let key_order = key_order::check(
        &env.kafka_bootstrap_servers,
        &sequence_topic,
        &effects,
        settings.keys,
        settings.events_per_key,
        Duration::from_secs(60),
    )
    .await?;
    let k6_counts = k6::read_summary(&summary);
    let mut relay_retries = 0;
    for o in orders.iter().flatten() {
        relay_retries += counter(&o.base_url, "relay_publish_retries_total").await;
    }
    for p in orders.into_iter().chain(payments).flatten() {
        p.stop().await;
    }
    for c in sequence_consumers.into_iter().flatten() {
        c.stop().await;
    }
    Ok(Outcome {
        settings,
        k6_status,
        k6_orders: k6_counts.0,
        k6_failed_requests: k6_counts.1,
        k6_replayed: k6_counts.2,
        relay_retries,
        report,
        key_order,
        timeline,
    })
}

/// A counter's value from a service's `GET /metrics` (0 when absent).
pub(crate) async fn counter(base_url: &str, name: &str) -> u64 {
    let text = match reqwest::get(format!("{base_url}/metrics")).await {
        Ok(answer) => answer.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// `kill -9` of the instance in `slot`; its port, for the restart.
fn kill9(slot: &mut Option<ServiceProcess>) -> u16 {
    slot.take().map_or(0, |p| {
        let port = p.port;
        p.kill9();
        port
    })
}

/// Waits until `expected` effect rows are committed, or nothing moved for `quiet`.
async fn wait_for_effects(pool: &sqlx::PgPool, expected: u64, quiet: Duration) {
    let (mut last, mut since) = (-1_i64, Instant::now());
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sequence_effects")
            .fetch_one(pool)
            .await
            .unwrap_or(-1);
        if u64::try_from(n).is_ok_and(|n| n >= expected) {
            return;
        }
        if n != last {
            (last, since) = (n, Instant::now());
        } else if since.elapsed() > quiet {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The outcome as Markdown: drill-results/scale-out.md, and the page's figures.
pub fn markdown(outcome: &Outcome, load_average: &str) -> String {
    let s = &outcome.settings;
    let r = &outcome.report;
    let k = &outcome.key_order;
    let mut out = format!(
        "# Scale-out drill\n\nRun of `make drills-scale-out` on {} (load average {load_average}): \
         {} order-services, {} payment-services, k6 at {} orders/s for {} s, \
         {} keys × {} numbered events.\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        s.order_services,
        s.payment_services,
        s.rate,
        s.duration.as_secs(),
        s.keys,
        s.events_per_key
    );
    out.push_str(&crate::timeline_markdown(&outcome.timeline));
    out.push_str(&format!(
        "\n| figure | value |\n|---|---:|\n\
         | orders k6 placed (distinct ids) | {} |\n\
         | requests that failed (a killed instance) and were retried with the same key | {} |\n\
         | answers replayed from the Idempotency-Key | {} |\n\
         | orders accepted | {} |\n\
         | failed sends retried by the relays alive at the end | {} |\n\
         | published duplicate copies (a send retried or re-claimed after it reached Kafka) | {} |\n\
         | duplicates suppressed by the inbox | {} |\n\
         | applied (payments) | {} |\n\
         | settled (PAID / PAYMENT_FAILED) | {} |\n\
         | **lost** | **{}** |\n\
         | **applied twice** | **{}** |\n\
         | numbered events on the topic (copies included) | {} |\n\
         | copies on the topic (a resend of the event just before) | {} |\n\
         | effects committed | {} |\n\
         | **keys out of order (topic or effects)** | **{}** |\n",
        outcome.k6_orders,
        outcome.k6_failed_requests,
        outcome.k6_replayed,
        r.accepted,
        outcome.relay_retries,
        r.published_duplicate_copies,
        r.duplicates_suppressed_by_inbox,
        r.applied,
        r.settled,
        r.lost,
        r.double_applied,
        k.on_topic,
        k.topic_copies,
        k.effects,
        k.violations.len()
    ));
    for v in k.violations.iter().take(10) {
        out.push_str(&format!("\n- {v}"));
    }
    out.push_str(&format!(
        "\n\nVerdict: {}\n",
        if outcome.holds() {
            "holds (every placed order accepted once, 0 lost, 0 applied twice, all settled, per-key order kept)"
        } else {
            "FAILED"
        }
    ));
    out
}
