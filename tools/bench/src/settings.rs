//! What a run measures and how hard, from `BENCH_*` variables. The defaults keep a full
//! run to a few minutes on 2 cores and every load bounded in count and time.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, bail};
use service_config::{DEFAULT_KAFKA_BOOTSTRAP_SERVERS, DEFAULT_POSTGRES_SERVER, DEFAULT_REDIS_URL};

/// One measurement of the run (`BENCH_ONLY=api,relay` picks some).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measurement {
    Api,
    Relay,
    Consumer,
    Saturation,
    E2e,
    Claim,
}

impl FromStr for Measurement {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "api" => Self::Api,
            "relay" => Self::Relay,
            "consumer" => Self::Consumer,
            "saturation" => Self::Saturation,
            "e2e" => Self::E2e,
            "claim" => Self::Claim,
            other => bail!(
                "BENCH_ONLY: {other:?} is not one of api, relay, consumer, saturation, e2e, claim"
            ),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Postgres server URL without a database (`BENCH_POSTGRES_URL`).
    pub postgres_server: String,
    pub kafka_bootstrap_servers: String,
    pub redis_url: String,
    /// Where results go (`BENCH_OUT`, default `bench-results`).
    pub out_dir: PathBuf,
    /// Where the release binaries are (`BENCH_BIN_DIR`, default `target/release`).
    pub bin_dir: PathBuf,
    /// First of the loopback ports the services under test listen on (`BENCH_PORT_BASE`,
    /// default 18180; uses base .. base+1). Not 8080/8081: `make up` may be running.
    pub port_base: u16,
    /// Length of each throughput window, in seconds (`BENCH_SECONDS`, default 10).
    pub seconds: u64,
    /// HTTP clients of the API measurement, and pgbench's clients against it
    /// (`BENCH_CONCURRENCY`, default 16).
    pub concurrency: usize,
    /// The fixed rates of the end-to-end latency measurement, orders/s
    /// (`BENCH_RATES`, default `10,100,500,1000`). The low rate is where NOTIFY against
    /// polling shows: a relay that is busy anyway never waits for its poll.
    pub rates: Vec<u32>,
    /// Outbox rows the relay drains, and messages the raw producer sends
    /// (`BENCH_RELAY_EVENTS`, default 5000).
    pub relay_events: usize,
    /// `OrderCreated` events payment-service consumes per drain
    /// (`BENCH_CONSUMER_MESSAGES`, 4000: a few seconds even at the fastest concurrency).
    pub consumer_messages: usize,
    /// The consumer's concurrencies, each against pgbench at the same concurrency
    /// (`BENCH_CONSUMER_SWEEP`, default `1,4,8,16,32`; 1 and the default are always in).
    pub consumer_sweep: Vec<usize>,
    /// Seconds of load per step of the saturation search (`BENCH_SATURATION_STEP_SECONDS`, 5).
    pub saturation_step_seconds: u64,
    /// Every order of a step must settle (PAID/PAYMENT_FAILED) within this many seconds
    /// after its load stops (`BENCH_SETTLE_SECONDS`, 5).
    pub settle_seconds: u64,
    /// Upper end of the saturation search, orders/s (`BENCH_SATURATION_MAX`, 3000).
    pub saturation_max: u32,
    /// Rows per combination of the claim-strategy bench (`BENCH_CLAIM_ROWS`, 5000).
    pub claim_rows: usize,
    pub only: Option<Vec<Measurement>>,
    /// Names this run's databases, topics and groups: `bench<run_id>_*`.
    pub run_id: String,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        fn parse<T: FromStr>(name: &str, value: Option<String>, default: T) -> anyhow::Result<T>
        where
            T::Err: std::fmt::Display,
        {
            match value {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|e| anyhow::anyhow!("{name}={v:?}: {e}")),
            }
        }
        let rates = match var("BENCH_RATES") {
            None => vec![10, 100, 500, 1000],
            Some(list) => list
                .split(',')
                .map(|r| r.trim().parse::<u32>())
                .collect::<Result<Vec<_>, _>>()
                .context("BENCH_RATES: a comma-separated list of orders/s")?,
        };
        if rates.is_empty() || rates.contains(&0) {
            bail!("BENCH_RATES: rates must be positive");
        }
        let consumer_sweep = match var("BENCH_CONSUMER_SWEEP") {
            None => vec![1, 4, 8, 16, 32],
            Some(list) => list
                .split(',')
                .map(|c| c.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .context("BENCH_CONSUMER_SWEEP: a comma-separated list of concurrencies")?,
        };
        if consumer_sweep.iter().any(|c| !(1..=128).contains(c)) {
            bail!("BENCH_CONSUMER_SWEEP: each concurrency 1 to 128");
        }
        let only = var("BENCH_ONLY")
            .map(|list| {
                list.split(',')
                    .map(str::parse)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let settings = Self {
            postgres_server: var("BENCH_POSTGRES_URL")
                .unwrap_or_else(|| DEFAULT_POSTGRES_SERVER.to_owned()),
            kafka_bootstrap_servers: var("KAFKA_BOOTSTRAP_SERVERS")
                .unwrap_or_else(|| DEFAULT_KAFKA_BOOTSTRAP_SERVERS.to_owned()),
            redis_url: var("REDIS_URL").unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned()),
            out_dir: PathBuf::from(var("BENCH_OUT").unwrap_or_else(|| "bench-results".into())),
            bin_dir: PathBuf::from(var("BENCH_BIN_DIR").unwrap_or_else(|| "target/release".into())),
            port_base: parse("BENCH_PORT_BASE", var("BENCH_PORT_BASE"), 18180)?,
            seconds: parse("BENCH_SECONDS", var("BENCH_SECONDS"), 10)?,
            concurrency: parse("BENCH_CONCURRENCY", var("BENCH_CONCURRENCY"), 16)?,
            rates,
            relay_events: parse("BENCH_RELAY_EVENTS", var("BENCH_RELAY_EVENTS"), 5_000)?,
            consumer_messages: parse(
                "BENCH_CONSUMER_MESSAGES",
                var("BENCH_CONSUMER_MESSAGES"),
                4_000,
            )?,
            consumer_sweep,
            saturation_step_seconds: parse(
                "BENCH_SATURATION_STEP_SECONDS",
                var("BENCH_SATURATION_STEP_SECONDS"),
                5,
            )?,
            settle_seconds: parse("BENCH_SETTLE_SECONDS", var("BENCH_SETTLE_SECONDS"), 5)?,
            saturation_max: parse("BENCH_SATURATION_MAX", var("BENCH_SATURATION_MAX"), 3_000)?,
            claim_rows: parse("BENCH_CLAIM_ROWS", var("BENCH_CLAIM_ROWS"), 5_000)?,
            only,
            run_id: chrono::Utc::now().format("%Y%m%d%H%M%S").to_string(),
        };
        // Bounds: the load of one run stays small on a shared 2-core machine.
        if !(1..=120).contains(&settings.seconds) {
            bail!("BENCH_SECONDS: 1 to 120");
        }
        if !(1..=256).contains(&settings.concurrency) {
            bail!("BENCH_CONCURRENCY: 1 to 256");
        }
        if !(1..=60).contains(&settings.saturation_step_seconds)
            || !(1..=120).contains(&settings.settle_seconds)
        {
            bail!("BENCH_SATURATION_STEP_SECONDS: 1 to 60; BENCH_SETTLE_SECONDS: 1 to 120");
        }
        if !(100..=5_000).contains(&settings.saturation_max) {
            bail!("BENCH_SATURATION_MAX: 100 to 5000 orders/s");
        }
        if settings.rates.iter().any(|r| *r > 5_000) {
            bail!("BENCH_RATES: at most 5000 orders/s each");
        }
        if settings.relay_events > 200_000 || settings.consumer_messages > 100_000 {
            bail!("BENCH_RELAY_EVENTS at most 200000, BENCH_CONSUMER_MESSAGES at most 100000");
        }
        Ok(settings)
    }

    pub fn wants(&self, m: Measurement) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(&m))
    }

    /// A database URL on the bench's Postgres server.
    pub fn database_url(&self, database: &str) -> String {
        format!("{}/{database}", self.postgres_server.trim_end_matches('/'))
    }

    /// A name unique to this run: databases, topics, consumer groups.
    pub fn name(&self, what: &str) -> String {
        format!("bench{}_{what}", self.run_id)
    }
}
