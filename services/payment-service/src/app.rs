//! Building and running the service: the same `App` runs in `main` and in tests
//! (on port 0).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use inbox::FastPath;
use message_consumer::{ConsumerSettings, MessageConsumer};
use outbox::{OutboxGauges, Relay};
use service_runtime::{BackgroundTasks, HttpServer, Infrastructure, Shutdown, StartError};
use telemetry::Metrics;

use crate::provider::PaymentProvider;
use crate::{Config, Payments, Stats, StatsSnapshot};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A built, not yet running, payment-service.
#[derive(Debug)]
pub struct App {
    server: HttpServer,
    infra: Infrastructure,
    shutdown: Shutdown,
    tasks: BackgroundTasks,
    fast_path: Option<FastPath>,
    stats: Arc<Stats>,
    metrics: Metrics,
}

impl App {
    /// Connects to Postgres (creating and migrating the `payments` database), creates the
    /// topics, starts the `OrderCreated` consumer and the outcome relay, and binds the
    /// listener. Fails fast on bad configuration.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        // A handler holds its transaction's connection while the provider's charge takes
        // a second one: with fewer than two per handler, handlers can wait on each other
        // for the pool (the bench at CONSUMER_CONCURRENCY=32 against a pool of 20 did).
        // Plus room for the outcome relay, the gauges and the purge.
        let pool_size = u32::try_from(2 * config.consumer.concurrency + 8).unwrap_or(u32::MAX);
        let infra = Infrastructure::connect(
            &config.infra,
            pool_size.max(20),
            &[&outbox::MIGRATOR, &inbox::MIGRATOR, &MIGRATOR],
        )
        .await?;
        let shutdown = Shutdown::default();
        let mut tasks = BackgroundTasks::default();
        // This service's registry, served at GET /metrics; every component counts into it.
        let metrics = Metrics::new();
        infra
            .ensure_topics(
                &[&config.order_events_topic, &config.payment_events_topic],
                config.replication_factor,
            )
            .await;

        // Created without connecting: Redis being down slows duplicates down, it stops
        // nothing (inbox/src/fast_path.rs).
        let fast_path = if config.dedup_fast_path {
            Some(
                FastPath::new(infra.redis.clone()).map_err(|e| StartError::Client {
                    variable: "REDIS_URL",
                    reason: e.to_string(),
                })?,
            )
        } else {
            None
        };
        // A replayed or re-read copy must still find its inbox record: the purge's
        // retention is compared with the topic's (a warning, not a refusal to start),
        // beside the start-up, not in its way; then the hourly purge.
        tasks.spawn(
            "inbox retention",
            inbox::keep_within_retention(
                infra.pool.clone(),
                config.consumer_group.clone(),
                infra.kafka_bootstrap_servers.clone(),
                config.order_events_topic.clone(),
                config.dedup_retention,
                shutdown.clone(),
            ),
        );

        let stats = Arc::new(Stats::default());
        let handler = Payments {
            pool: infra.pool.clone(),
            provider: PaymentProvider::new(infra.pool.clone(), config.provider.clone()),
            consumer_group: config.consumer_group.clone(),
            payment_events_topic: config.payment_events_topic.clone(),
            fast_path: fast_path.clone(),
            dedup_ttl: config.dedup_ttl,
            inbox_off: config.unsafe_toggles.inbox_off,
            business_key_off: config.unsafe_toggles.business_key_off,
            metrics: metrics.clone(),
        };
        if config.unsafe_toggles.any() {
            tracing::warn!(toggles = ?config.unsafe_toggles, "UNSAFE teaching toggles on: messages can be lost or applied twice");
        }
        let mut settings = ConsumerSettings::new(
            &infra.kafka_bootstrap_servers,
            &config.consumer_group,
            &config.order_events_topic,
        )
        .tuned(config.consumer);
        settings.offset_commit = config.unsafe_toggles.offset_commit;
        let consumer = MessageConsumer::new(settings, handler)
            .map_err(|e| StartError::Client {
                variable: "KAFKA_BOOTSTRAP_SERVERS",
                reason: e.to_string(),
            })?
            .with_metrics(&metrics);
        stats.attach_consumer(consumer.counters());
        tasks.spawn("OrderCreated consumer", consumer.run(shutdown.clone()));

        // The outcome events leave through the same shared relay as order-service's.
        if config.relay.enabled {
            let relay = Relay::new(
                infra.pool.clone(),
                infra.producer(
                    &config
                        .relay
                        .producer_settings(&infra.kafka_bootstrap_servers),
                )?,
                config.relay.clone(),
            )
            .with_metrics(&metrics);
            tasks.spawn("outbox relay", relay.run(shutdown.clone()));
        }
        tasks.spawn(
            "outbox gauges",
            OutboxGauges::new(&metrics).run(infra.pool.clone(), shutdown.clone()),
        );
        tasks.spawn(
            "metrics upkeep",
            service_runtime::metrics_upkeep(metrics.clone(), shutdown.clone()),
        );

        let stats_route = Router::new()
            .route("/stats", get(serve_stats))
            .with_state(Arc::clone(&stats));
        let router = Router::new()
            .merge(infra.readiness_router())
            .merge(stats_route);
        let router = service_runtime::observe(router, &metrics);
        let server = HttpServer::bind(config.infra.listen_addr, router, shutdown.clone()).await?;
        Ok(Self {
            server,
            infra,
            shutdown,
            tasks,
            fast_path,
            stats,
            metrics,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The switch that stops the running app (tests use it instead of a signal).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
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
        self.metrics.clone()
    }

    /// Serves until SIGINT/SIGTERM or the shutdown switch; then lets the consumer finish
    /// the message in hand and commit, the relay flush, and closes the pool.
    pub async fn run_until_stopped(self) {
        self.server.serve().await;
        self.tasks.join().await;
        self.infra.close().await;
        tracing::info!("payment-service stopped");
    }
}

/// `GET /stats`: the counters per defence layer, as JSON.
async fn serve_stats(State(stats): State<Arc<Stats>>) -> Json<StatsSnapshot> {
    Json(stats.snapshot())
}
