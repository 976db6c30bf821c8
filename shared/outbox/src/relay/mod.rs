//! The relay: outbox rows → Kafka, in passes.
//!
//! A pass is claim → publish → mark ([`Relay::relay_once`]). [`Relay::run`] repeats
//! passes, woken by `LISTEN outbox_new` as soon as a row commits and by a poll timer
//! as a fallback; while a backlog lasts it keeps up to `RELAY_CONCURRENCY` passes in
//! flight, so that one batch's acks are awaited while the next batch is claimed and
//! sent. Several relays (processes) may run against one table.

mod claim;
mod mark;
mod metrics;
mod publish;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, Producer};
use service_runtime::Shutdown;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use telemetry::Metrics;
use tokio::sync::Notify;

use self::metrics::RelayMetrics;
pub use claim::{ClaimStrategy, ClaimedRow};

/// How a relay claims and paces its work.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Identifies this relay in `claimed_by` (host/process/task).
    pub relay_id: String,
    pub strategy: ClaimStrategy,
    /// Rows claimed per pass.
    pub batch_size: i64,
    /// Passes in flight at most (`RELAY_CONCURRENCY`, at least 1): the lanes of
    /// [`Relay::run`]. One pass waits for every ack of its batch before it marks the
    /// batch sent; while a backlog lasts, other lanes claim and send the next batches
    /// meanwhile. Per-key order still holds: a key whose earlier event is claimed by
    /// another pass and not yet marked sent is not claimed (`claim.rs`).
    pub concurrency: usize,
    /// How long a claim holds. A relay that dies holding rows delays them by this much
    /// (crash point R1/R2); a relay slower than this may see its rows re-sent.
    pub lease: Duration,
    /// The fallback poll when no notification arrives (the note's "scheduled job").
    pub poll_interval: Duration,
    /// The shortest time between the starts of two passes of the lead lane
    /// (`RELAY_LINGER_MS`): what a row may wait for company under a steady stream.
    pub linger: Duration,
    /// Wait for `LISTEN outbox_new` notifications between passes.
    pub listen_notify: bool,
    /// Run the relay inside the service (`RELAY_ENABLED`). Off when `outbox-relay`
    /// processes do the work instead.
    pub enabled: bool,
    /// Claims a row gets before a failed send gives it up as `FAILED`
    /// (`RELAY_MAX_ATTEMPTS`, at least 1). With the backoff capped at 30 s, 20 attempts
    /// keep a row trying for about seven minutes.
    pub max_attempts: i32,
    /// How long `SENT` rows are kept before housekeeping deletes them
    /// (`OUTBOX_RETENTION_HOURS`, in hours).
    pub retention: Duration,
    /// How often [`Relay::run`] runs the housekeeping step.
    pub purge_interval: Duration,
}

impl RelayConfig {
    pub fn new(relay_id: impl Into<String>) -> Self {
        Self {
            relay_id: relay_id.into(),
            strategy: ClaimStrategy::SkipLocked,
            batch_size: 200,
            concurrency: 4,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
            linger: Duration::from_millis(20),
            listen_notify: true,
            enabled: true,
            max_attempts: 20,
            retention: Duration::from_secs(168 * 3600),
            purge_interval: Duration::from_secs(300),
        }
    }
}

impl RelayConfig {
    /// Reads `RELAY_CLAIM_STRATEGY` (`skip-locked` | `optimistic-lock`), `RELAY_BATCH_SIZE`,
    /// `RELAY_CONCURRENCY` (default 4), `RELAY_LEASE_MS`, `RELAY_POLL_MS`, `RELAY_LINGER_MS`,
    /// `RELAY_LISTEN_NOTIFY`, `RELAY_ENABLED` (true | false), `RELAY_MAX_ATTEMPTS`
    /// (default 20) and `OUTBOX_RETENTION_HOURS` (default 168).
    pub fn from_lookup(
        relay_id: impl Into<String>,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, service_config::ConfigError> {
        use service_config::{parse_at_least, parse_var};
        let d = Self::new(relay_id);
        // Zero attempts would give every row up before its first try; zero lanes would
        // never send.
        let max_attempts = parse_at_least(lookup, "RELAY_MAX_ATTEMPTS", d.max_attempts, 1)?;
        let concurrency = parse_at_least(lookup, "RELAY_CONCURRENCY", d.concurrency, 1)?;
        let retention_hours: u64 = parse_var(lookup, "OUTBOX_RETENTION_HOURS", 168)?;
        Ok(Self {
            strategy: parse_var(lookup, "RELAY_CLAIM_STRATEGY", d.strategy)?,
            batch_size: parse_var(lookup, "RELAY_BATCH_SIZE", d.batch_size)?,
            concurrency,
            lease: Duration::from_millis(parse_var(lookup, "RELAY_LEASE_MS", 30_000)?),
            poll_interval: Duration::from_millis(parse_var(lookup, "RELAY_POLL_MS", 500)?),
            linger: Duration::from_millis(parse_var(lookup, "RELAY_LINGER_MS", 20)?),
            listen_notify: parse_var(lookup, "RELAY_LISTEN_NOTIFY", d.listen_notify)?,
            enabled: parse_var(lookup, "RELAY_ENABLED", d.enabled)?,
            max_attempts,
            retention: Duration::from_secs(retention_hours.saturating_mul(3600)),
            purge_interval: d.purge_interval,
            relay_id: d.relay_id,
        })
    }
}

/// What one pass did. `sent`, `failed` and `gave_up` are disjoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayReport {
    pub claimed: usize,
    pub sent: usize,
    /// Sends that failed; the rows went back to `PENDING` for another attempt.
    pub failed: usize,
    /// Sends that failed for the last time (`RELAY_MAX_ATTEMPTS`): the rows are `FAILED`.
    pub gave_up: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("outbox database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Moves outbox rows of one database to Kafka.
#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    producer: FutureProducer,
    config: RelayConfig,
    metrics: RelayMetrics,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// `producer` should come from `kafka_config::ProducerSettings` (acks=all, idempotent).
    pub fn new(pool: PgPool, producer: FutureProducer, config: RelayConfig) -> Self {
        Self {
            pool,
            producer,
            config,
            // Counted into a registry of its own until the service hands it its own.
            metrics: RelayMetrics::new(&Metrics::default()),
        }
    }

    /// Counts into `metrics` (the service's registry, served at `GET /metrics`).
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.metrics = RelayMetrics::new(metrics);
        self
    }

    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Only the first step of a pass: claim a batch (state `SENDING`, leased to this
    /// relay) and return it. A relay that stops here is a relay that crashed at R1;
    /// tests and drills use it to leave rows claimed.
    pub async fn claim(&self) -> Result<Vec<ClaimedRow>, RelayError> {
        Ok(claim::claim(&self.pool, &self.config).await?)
    }

    /// One pass: claim a batch, publish it, wait for every ack, mark what was acked.
    pub async fn relay_once(&self) -> Result<RelayReport, RelayError> {
        let rows = self.claim().await?;
        self.publish_and_mark(rows).await
    }

    /// The rest of a pass, after the claim: publish, await the acks, mark. Tests call it
    /// on rows claimed long before, to play a relay slower than its lease.
    pub async fn publish_and_mark(&self, rows: Vec<ClaimedRow>) -> Result<RelayReport, RelayError> {
        if rows.is_empty() {
            return Ok(RelayReport::default());
        }
        // Crash point R1: claimed, nothing sent. The lease brings the rows back.
        service_runtime::crash_point("R1");
        let results = publish::publish_all(&self.producer, &rows, &self.metrics).await;
        // Crash point R2: sent and acknowledged, not yet marked. The rows will be
        // sent again after the lease: a duplicate on the topic, never a loss.
        service_runtime::crash_point("R2");
        let mut report = RelayReport {
            claimed: rows.len(),
            ..RelayReport::default()
        };
        let mut acked = Vec::with_capacity(rows.len());
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(delivery) => acked.push((row, delivery)),
                Err(error) => {
                    match mark::release_for_retry(&self.pool, row, &error, self.config.max_attempts)
                        .await?
                    {
                        mark::Released::GaveUp => {
                            // Logged in mark.rs; counted here: a FAILED row is a message
                            // that will not reach Kafka until an operator acts.
                            self.metrics.failures.increment(1);
                            report.gave_up += 1;
                        }
                        released => {
                            if released == mark::Released::ForRetry {
                                self.metrics.retries.increment(1);
                            }
                            tracing::warn!(event_id = %row.id, attempts = row.attempts, %error, ?released, "publish failed; will retry");
                            report.failed += 1;
                        }
                    }
                }
            }
        }
        // Mark sent only after the broker acked: a crash before this line re-sends,
        // never loses (docs/en/02-produce.md). One statement for the whole batch.
        mark::mark_sent(&self.pool, &acked, &self.config.relay_id).await?;
        self.metrics.published.increment(acked.len() as u64);
        report.sent = acked.len();
        Ok(report)
    }

    /// Runs passes until `shutdown`, up to `concurrency` of them at a time, in lanes.
    ///
    /// The **lead lane** is woken by `LISTEN outbox_new` (or the poll timer) and runs
    /// passes back to back until one finds nothing. At a steady trickle it is the only
    /// lane at work, and each of its passes takes everything that committed during the
    /// previous one: few, well-filled batches.
    ///
    /// **Helper lanes** wake only when a claim comes back full (more rows are waiting
    /// than one batch holds): the full pass wakes one helper before it sends, that
    /// helper's full pass wakes the next, and so on. While one lane awaits its acks (an
    /// `acks=all` round trip through the followers) and its mark, the others claim and
    /// send the next batches, so a backlog drains with several batches in flight. A
    /// helper goes back to sleep after a pass that is not full.
    ///
    /// Why not let every lane answer notifications: at a steady trickle they would split
    /// the same rows into many tiny passes, each paying its own claim, produce request
    /// and mark. On this project's 2-core machine that made the end-to-end latency at
    /// 100 orders/s 16 times worse (docs/en/08-load-and-benchmark.md).
    ///
    /// On shutdown every lane finishes the pass in flight, then the producer is flushed.
    pub async fn run(self, shutdown: Shutdown) {
        let signals = Arc::new(Signals::default());
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(self.clone().lead_lane(signals.clone(), shutdown.clone()));
        for lane in 1..self.config.concurrency {
            tasks.spawn(
                self.clone()
                    .helper_lane(lane, signals.clone(), shutdown.clone()),
            );
        }
        if self.config.listen_notify {
            tasks.spawn(
                self.clone()
                    .forward_notifications(signals, shutdown.clone()),
            );
        }
        tasks.spawn(self.clone().housekeeping(shutdown.clone()));
        tasks.spawn(sample_producer_queue(
            self.producer.clone(),
            self.metrics.producer_queue.clone(),
            shutdown.clone(),
        ));
        while let Some(joined) = tasks.join_next().await {
            if let Err(error) = joined {
                tracing::error!(%error, "relay task ended abnormally");
            }
        }
        if let Err(error) = self.producer.flush(Duration::from_secs(10)) {
            tracing::warn!(%error, "producer flush at shutdown");
        }
        tracing::info!(relay = %self.config.relay_id, "relay stopped");
    }

    /// A pass inside [`Relay::run`]: a full claim means more rows are waiting, so it
    /// wakes a helper lane before it sends. Returns how many rows it claimed.
    async fn lane_pass(&self, signals: &Signals) -> Result<usize, RelayError> {
        let rows = self.claim().await?;
        let claimed = rows.len();
        if claimed as i64 >= self.config.batch_size {
            signals.backlog.notify_one();
        }
        self.publish_and_mark(rows).await?;
        Ok(claimed)
    }

    /// The lead lane: passes back to back while they find rows, then a wait for a
    /// notification or the poll interval (or the backoff, while the database fails).
    async fn lead_lane(self, signals: Arc<Signals>, shutdown: Shutdown) {
        let mut failures: u32 = 0;
        let mut last_pass: Option<tokio::time::Instant> = None;
        while !shutdown.is_triggered() {
            // The linger: a pass starts no sooner than `linger` after the one before.
            // After a quiet spell a new row is taken at once; under a steady stream the
            // rows that commit meanwhile travel together, in one produce request per
            // partition leader instead of many.
            if let Some(ready) = last_pass.map(|at| at + self.config.linger) {
                tokio::select! {
                    () = shutdown.wait() => break,
                    () = tokio::time::sleep_until(ready) => {},
                }
            }
            last_pass = Some(tokio::time::Instant::now());
            let wait = match self.lane_pass(&signals).await {
                Ok(claimed) => {
                    failures = 0;
                    if claimed > 0 {
                        continue;
                    }
                    self.config.poll_interval
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, failures, "relay pass failed");
                    backoff(failures)
                }
            };
            tokio::select! {
                () = shutdown.wait() => break,
                () = tokio::time::sleep(wait) => {},
                // After a failure, the backoff wins over notifications.
                () = signals.new_rows.notified(), if failures == 0 => {},
            }
        }
    }

    /// A helper lane: asleep until a full claim wakes it, then passes while they come
    /// back full. A failure sends it back to sleep; the lead lane keeps the backoff.
    async fn helper_lane(self, lane: usize, signals: Arc<Signals>, shutdown: Shutdown) {
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                () = signals.backlog.notified() => {},
            }
            while !shutdown.is_triggered() {
                match self.lane_pass(&signals).await {
                    Ok(claimed) if claimed as i64 >= self.config.batch_size => {}
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(%error, lane, "relay pass failed");
                        break;
                    }
                }
            }
        }
    }

    /// Turns each `outbox_new` notification into a wake-up of the lead lane. If it is in
    /// a pass, the wake-up is kept (not lost) and its next wait ends at once. A broken
    /// listener is reconnected with a backoff; meanwhile the lead lane polls.
    async fn forward_notifications(self, signals: Arc<Signals>, shutdown: Shutdown) {
        let mut failures: u32 = 0;
        while !shutdown.is_triggered() {
            if let Some(mut listener) = self.listen().await {
                failures = 0;
                loop {
                    tokio::select! {
                        () = shutdown.wait() => return,
                        received = listener.recv() => match received {
                            Ok(_) => signals.new_rows.notify_one(),
                            Err(error) => {
                                tracing::warn!(%error, "LISTEN outbox_new broke; polling until it is back");
                                break;
                            }
                        },
                    }
                }
            }
            failures = failures.saturating_add(1);
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(backoff(failures)) => {},
            }
        }
    }

    /// Deletes `SENT` rows past the retention every `purge_interval`.
    async fn housekeeping(self, shutdown: Shutdown) {
        while !shutdown.is_triggered() {
            self.purge().await;
            tokio::select! {
                () = shutdown.wait() => {},
                () = tokio::time::sleep(self.config.purge_interval) => {},
            }
        }
    }

    /// One housekeeping step: delete `SENT` rows past the retention.
    /// Cheap (an index range scan, bounded batches); a failure waits for the next step.
    async fn purge(&self) {
        match crate::purge_sent_once(&self.pool, self.config.retention).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "purged SENT outbox rows past retention"),
            Err(error) => tracing::warn!(%error, "outbox purge failed; next step retries"),
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.ok()?;
        listener.listen("outbox_new").await.ok()?;
        Some(listener)
    }
}

/// The wake-ups between the lanes of a running relay.
#[derive(Debug, Default)]
struct Signals {
    /// A row committed (`LISTEN outbox_new`): wakes the lead lane.
    new_rows: Notify,
    /// A claim came back full: wakes one helper lane.
    backlog: Notify,
}

/// Samples the producer's queue every second until shutdown. A pass waits for all its
/// acks, so the queue is sampled beside the passes, not after them: it shows the
/// messages a pass is still waiting for (a slow or failing-over broker).
async fn sample_producer_queue(
    producer: FutureProducer,
    gauge: ::metrics::Gauge,
    shutdown: Shutdown,
) {
    while !shutdown.is_triggered() {
        gauge.set(f64::from(producer.in_flight_count()));
        tokio::select! {
            () = shutdown.wait() => {},
            () = tokio::time::sleep(Duration::from_secs(1)) => {},
        }
    }
}

/// Exponential backoff for a failing database, capped at 10 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(7))).min(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<RelayConfig, service_config::ConfigError> {
        RelayConfig::from_lookup("r", &|name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_keep_four_passes_in_flight() {
        let c = config(&[]).expect("defaults");
        assert_eq!((c.concurrency, c.batch_size, c.max_attempts), (4, 200, 20));
    }

    #[test]
    fn concurrency_and_attempts_below_one_are_refused() {
        assert_eq!(
            config(&[("RELAY_CONCURRENCY", "1")])
                .expect("one lane")
                .concurrency,
            1
        );
        for (name, value) in [("RELAY_CONCURRENCY", "0"), ("RELAY_MAX_ATTEMPTS", "0")] {
            let error = config(&[(name, value)]).expect_err("refused").to_string();
            assert!(
                error.contains(name) && error.contains("at least 1"),
                "{error}"
            );
        }
    }
}
