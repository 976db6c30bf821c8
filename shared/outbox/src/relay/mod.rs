//! The relay: outbox rows → Kafka, in one of two modes (`RELAY_MODE`), the study note's
//! two variants of "synchronous confirmation" (docs/en/02-produce.md).
//!
//! - **stream** (default, `stream.rs`): "send, then mark the row from the delivery
//!   callback". One task claims and hands rows to the producer while earlier sends
//!   still await their acks; another marks the acked rows `SENT` in batched statements
//!   as the delivery reports arrive. At most `RELAY_MAX_IN_FLIGHT` rows are claimed and
//!   not yet settled.
//! - **wave** (`lanes.rs`): "send, wait for the acks, then mark". A pass is claim →
//!   publish → await every ack → mark ([`Relay::relay_once`]); up to
//!   `RELAY_CONCURRENCY` passes run at a time, in lanes.
//!
//! Both are woken by `LISTEN outbox_new` as soon as a row commits and by a poll timer
//! as a fallback. Several relays (processes) may run against one table. In both modes a
//! row is marked `SENT` only after its own ack, and a key's next row is claimed only
//! once the earlier one is marked (`claim.rs`): per-key order holds.
//!
//! Crash points (`CRASH_AT`, docs/en/01-overview.md):
//! - **R1** claimed, nothing sent (both modes).
//! - **R2** the wave's acks all in, not yet marked (wave mode).
//! - **R3** an ack in the streaming relay's hands, not yet marked (stream mode).

mod claim;
mod config;
mod lanes;
mod mark;
mod metrics;
mod publish;
mod stream;

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
pub use config::{RelayConfig, RelayMode};

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
        Ok(claim::claim(&self.pool, &self.config, self.config.batch_size).await?)
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
                Err(error) => match self.release_failed(row, &error).await? {
                    mark::Released::GaveUp => report.gave_up += 1,
                    _ => report.failed += 1,
                },
            }
        }
        // Mark sent only after the broker acked: a crash before this line re-sends,
        // never loses (docs/en/02-produce.md). One statement for the whole batch.
        let acked: Vec<_> = acked.iter().map(|(row, d)| (*row, d)).collect();
        mark::mark_sent(&self.pool, &acked, &self.config.relay_id).await?;
        self.metrics.published.increment(acked.len() as u64);
        report.sent = acked.len();
        Ok(report)
    }

    /// A failed send: back to `PENDING` for a retry, or `FAILED` when it can never
    /// succeed (the policy is `mark::release_for_retry`'s), counted either way.
    async fn release_failed(
        &self,
        row: &ClaimedRow,
        failure: &publish::SendFailure,
    ) -> Result<mark::Released, sqlx::Error> {
        let error = &failure.reason;
        let released =
            mark::release_for_retry(&self.pool, row, failure, self.config.max_attempts).await?;
        match released {
            // Logged in mark.rs; counted here: a FAILED row is a message that will not
            // reach Kafka until an operator acts.
            mark::Released::GaveUp => self.metrics.failures.increment(1),
            mark::Released::ForRetry | mark::Released::LeaseLost => {
                if released == mark::Released::ForRetry {
                    self.metrics.retries.increment(1);
                }
                tracing::warn!(event_id = %row.id, attempts = row.attempts, %error, ?released, "publish failed; will retry");
            }
        }
        Ok(released)
    }

    /// Runs the relay until `shutdown`, in the configured mode (`RELAY_MODE`), with the
    /// `LISTEN outbox_new` forwarder, housekeeping and the producer-queue gauge beside.
    ///
    /// On shutdown the relay stops claiming and settles what is in flight (the wave's
    /// passes finish; the stream's acks are awaited and marked), then the producer is
    /// flushed.
    pub async fn run(self, shutdown: Shutdown) {
        let signals = Arc::new(Signals::default());
        let mut tasks = tokio::task::JoinSet::new();
        match self.config.mode {
            RelayMode::Stream => self.spawn_stream(&mut tasks, &signals, &shutdown),
            RelayMode::Wave => self.spawn_lanes(&mut tasks, &signals, &shutdown),
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

/// The wake-ups between the tasks of a running relay.
#[derive(Debug, Default)]
struct Signals {
    /// A row committed (`LISTEN outbox_new`): wakes the lead lane, or the streaming
    /// relay's claimer.
    new_rows: Notify,
    /// Wave mode: a claim came back full: wakes one helper lane.
    backlog: Notify,
    /// Stream mode: acks were marked (or failures released): room in flight again, and
    /// the next rows of those keys may be claimable now.
    settled: Notify,
}

/// Samples the producer's queue every second until shutdown, beside the passes or the
/// stream: it shows the messages still waiting for their acks (a slow or failing-over
/// broker).
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
