//! Building and running the service: the same `App` runs in `main` and in tests
//! (on port 0).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use inbox::FastPath;
use lifecycle::{Shutdown, TaskFailure};
use service_runtime::{Service, ServiceSkeleton, StartError};
use telemetry::Metrics;

use crate::provider::PaymentProvider;
use crate::{Config, Payments, Stats, StatsSnapshot};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A built, not yet running, payment-service.
#[derive(Debug)]
pub struct App {
    service: Service,
    fast_path: Option<FastPath>,
    stats: Arc<Stats>,
}

impl App {
    /// Starts the shared skeleton (the `payments` database created and migrated, both
    /// topics, the outcome relay, the gauges, the inbox retention of `OrderCreated`),
    /// then this service's own parts: the `OrderCreated` consumer with its dedup
    /// layers, and `GET /stats`. Fails fast on bad configuration.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let common = &config.common;
        // A handler holds its transaction's connection while the provider's charge takes
        // a second one: with fewer than two per handler, handlers can wait on each other
        // for the pool (the bench at CONSUMER_CONCURRENCY=32 against a pool of 20 did).
        // Plus room for the outcome relay, the gauges and the purge.
        let pool_size = u32::try_from(2 * common.consumer.concurrency + 8).unwrap_or(u32::MAX);
        let mut skeleton = ServiceSkeleton::start(
            common,
            pool_size.max(20),
            &MIGRATOR,
            &common.order_events_topic,
        )
        .await?;
        let pool = skeleton.infra.pool.clone();

        // Created without connecting: Redis being down slows duplicates down, it stops
        // nothing (inbox/src/fast_path.rs).
        let fast_path = if config.dedup_fast_path {
            Some(
                FastPath::new(skeleton.infra.redis.clone()).map_err(|e| StartError::Client {
                    variable: "REDIS_URL",
                    reason: e.to_string(),
                })?,
            )
        } else {
            None
        };

        let handler = Payments {
            pool: pool.clone(),
            provider: PaymentProvider::new(pool.clone(), config.provider.clone()),
            consumer_group: common.consumer_group.clone(),
            payment_events_topic: common.payment_events_topic.clone(),
            fast_path: fast_path.clone(),
            dedup_ttl: config.dedup_ttl,
            inbox_off: config.unsafe_toggles.inbox_off,
            business_key_off: config.unsafe_toggles.business_key_off,
            metrics: skeleton.metrics.clone(),
        };
        if config.unsafe_toggles.any() {
            tracing::warn!(toggles = ?config.unsafe_toggles, "UNSAFE teaching toggles on: messages can be lost or applied twice");
        }
        let mut settings = skeleton.consumer_settings(&common.order_events_topic, common.consumer);
        settings.offset_commit = config.unsafe_toggles.offset_commit;
        let stats = Arc::new(Stats::default());
        stats.attach_consumer(skeleton.spawn_consumer(
            "OrderCreated consumer",
            settings,
            handler,
        )?);

        let stats_route = Router::new()
            .route("/stats", get(serve_stats))
            .with_state(Arc::clone(&stats));
        let service = skeleton
            .serve(common.infra.listen_addr, stats_route)
            .await?;
        Ok(Self {
            service,
            fast_path,
            stats,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.service.local_addr()
    }

    /// The switch that stops the running app (tests use it instead of a signal).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.service.shutdown_handle()
    }

    /// The Redis fast path (`None` when `DEDUP_FAST_PATH=false`); its `stats()` say how
    /// many duplicates it suppressed and how often Redis was unavailable.
    pub fn fast_path(&self) -> Option<FastPath> {
        self.fast_path.clone()
    }

    /// The counters per defence layer, as `GET /stats` serves them.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// This service's metrics registry, as `GET /metrics` renders it.
    pub fn metrics(&self) -> Metrics {
        self.service.metrics()
    }

    /// Serves until SIGINT/SIGTERM or the shutdown switch; then lets the consumer finish
    /// the messages in hand and commit, the relay flush, and closes the pool. `Err`: a
    /// background loop ended early and stopped the service.
    pub async fn run_until_stopped(self) -> Result<(), Vec<TaskFailure>> {
        self.service.run_until_stopped("payment-service").await
    }
}

/// `GET /stats`: the counters per defence layer, as JSON.
async fn serve_stats(State(stats): State<Arc<Stats>>) -> Json<StatsSnapshot> {
    Json(stats.snapshot())
}
