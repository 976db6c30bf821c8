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
mod housekeeping;
mod lanes;
mod mark;
mod metrics;
mod pass;
mod publish;
mod stream;
mod wakeups;

use std::sync::Arc;
use std::time::Duration;

use lifecycle::Shutdown;
use rdkafka::producer::{FutureProducer, Producer};
use sqlx::PgPool;
use telemetry::Metrics;
use tokio::sync::Notify;

use self::metrics::RelayMetrics;
pub use claim::{ClaimStrategy, ClaimedRow};
pub use config::{RelayConfig, RelayMode};
pub use housekeeping::purge_sent_once;

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
        tasks.spawn(housekeeping::sample_producer_queue(
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

/// The longest wait between two attempts on a failing database (the claim, the
/// listener, the marks): short enough that the relay is back soon after the database.
const DATABASE_BACKOFF_CAP: Duration = Duration::from_secs(10);
