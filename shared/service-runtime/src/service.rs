//! The service skeleton: what every service of the chain starts the same way, so that
//! each service's `App::build` holds only its policy (its routes, its handler, what its
//! consumer consumes).
//!
//! [`ServiceSkeleton::start`] connects the infrastructure (its database created and
//! migrated with the outbox's and the inbox's tables, both topics created), then starts
//! what runs beside the policy: the outbox relay, the outbox gauges, the metrics upkeep,
//! and the inbox's retention check and purge. The service adds its consumer
//! ([`ServiceSkeleton::spawn_consumer`]) and its routes ([`ServiceSkeleton::serve`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use lifecycle::{BackgroundTasks, CrashPoint, Shutdown, TaskFailure};
use message_consumer::{ConsumerSettings, ConsumerTuning, Handler, LoopCounters, MessageConsumer};
use outbox::{OutboxGauges, Relay, RelayConfig};
use service_config::{ConfigError, Defaults, InfraConfig, parse_var};
use sqlx::migrate::Migrator;
use telemetry::Metrics;

use crate::{HttpServer, Infrastructure, StartError};

/// The variables every service of the chain reads, besides its own.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// `DATABASE_URL`, `REDIS_URL`, `KAFKA_BOOTSTRAP_SERVERS`, `HOST`, `PORT`.
    pub infra: InfraConfig,
    /// `ORDER_EVENTS_TOPIC` (default `order-events`): `OrderCreated`.
    pub order_events_topic: String,
    /// `PAYMENT_EVENTS_TOPIC` (default `payment-events`): the payment outcomes.
    pub payment_events_topic: String,
    /// `CONSUMER_GROUP` (default: the service's name).
    pub consumer_group: String,
    /// `TOPIC_REPLICATION_FACTOR` (default 3): used when the service creates its topics.
    pub replication_factor: i32,
    /// `RELAY_*`: see `outbox::RelayConfig::from_lookup`.
    pub relay: RelayConfig,
    /// `CONSUMER_CONCURRENCY` (messages of different keys handled at once) and
    /// `CONSUMER_MAX_RETRIES`: see `message_consumer::ConsumerTuning`.
    pub consumer: ConsumerTuning,
    /// `DEDUP_RETENTION_HOURS` (default 168, decimals allowed, at least a minute): how
    /// long the inbox remembers an event id before the purge forgets it; compared with
    /// the consumed topic's `retention.ms` at start (`inbox::retention_from_lookup`).
    pub dedup_retention: Duration,
    /// `CRASH_AT`: the failure drills' crash point, checked against the list at start.
    pub crash_at: Option<CrashPoint>,
}

impl CommonConfig {
    /// `service` is the service's name (`order-service`): the default consumer group,
    /// and the relay's id (`order-relay-<pid>`).
    pub fn from_lookup(
        service: &str,
        defaults: Defaults,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let relay_id = format!(
            "{}-relay-{}",
            service.trim_end_matches("-service"),
            std::process::id()
        );
        Ok(Self {
            infra: InfraConfig::from_lookup(defaults, lookup)?,
            order_events_topic: parse_var(lookup, "ORDER_EVENTS_TOPIC", "order-events".to_owned())?,
            payment_events_topic: parse_var(
                lookup,
                "PAYMENT_EVENTS_TOPIC",
                "payment-events".to_owned(),
            )?,
            consumer_group: parse_var(lookup, "CONSUMER_GROUP", service.to_owned())?,
            replication_factor: parse_var(lookup, "TOPIC_REPLICATION_FACTOR", 3)?,
            relay: RelayConfig::from_lookup(relay_id, lookup)?,
            consumer: ConsumerTuning::from_lookup(lookup)?,
            dedup_retention: inbox::retention_from_lookup(lookup)?,
            crash_at: lifecycle::crash_at_from_lookup(lookup)?,
        })
    }
}

/// A service connected and running its shared loops, before its own parts are added.
#[derive(Debug)]
pub struct ServiceSkeleton {
    pub infra: Infrastructure,
    pub shutdown: Shutdown,
    pub tasks: BackgroundTasks,
    /// This service's registry, served at `GET /metrics`; every component counts into it.
    pub metrics: Metrics,
    consumer_group: String,
}

impl ServiceSkeleton {
    /// Connects (a pool of `max_connections`; `migrator` is the service's own tables),
    /// creates both topics, and starts the relay (`RELAY_ENABLED`), the outbox gauges,
    /// the metrics upkeep and the inbox retention of `consumed_topic`.
    pub async fn start(
        config: &CommonConfig,
        max_connections: u32,
        migrator: &'static Migrator,
        consumed_topic: &str,
    ) -> Result<Self, StartError> {
        let infra = Infrastructure::connect(
            &config.infra,
            max_connections,
            &[&outbox::MIGRATOR, &inbox::MIGRATOR, migrator],
        )
        .await?;
        let shutdown = Shutdown::default();
        let mut tasks = BackgroundTasks::new(shutdown.clone());
        let metrics = Metrics::new();
        infra
            .ensure_topics(
                &[&config.order_events_topic, &config.payment_events_topic],
                config.replication_factor,
            )
            .await;

        // Events leave through the outbox: the relay runs inside the service unless
        // standalone `outbox-relay` processes do the work.
        if config.relay.enabled {
            let producer = infra.producer(
                &config
                    .relay
                    .producer_settings(&infra.kafka_bootstrap_servers),
            )?;
            let relay = Relay::new(infra.pool.clone(), producer, config.relay.clone())
                .with_metrics(&metrics);
            tasks.spawn("outbox relay", relay.run(shutdown.clone()));
        }
        // Sampled whether or not this process relays: the table is the truth either way.
        tasks.spawn(
            "outbox gauges",
            OutboxGauges::new(&metrics).run(infra.pool.clone(), shutdown.clone()),
        );
        tasks.spawn(
            "metrics upkeep",
            crate::metrics_upkeep(metrics.clone(), shutdown.clone()),
        );
        // A replayed or re-read copy must still find its inbox record: the inbox forgets
        // event ids after DEDUP_RETENTION_HOURS, compared with the consumed topic's
        // retention (a warning, not a refusal to start), then purged every tenth of the
        // retention (at least hourly).
        tasks.spawn(
            "inbox retention",
            inbox::keep_within_retention(
                infra.pool.clone(),
                config.consumer_group.clone(),
                infra.kafka_bootstrap_servers.clone(),
                consumed_topic.to_owned(),
                config.dedup_retention,
                shutdown.clone(),
            ),
        );
        Ok(Self {
            infra,
            shutdown,
            tasks,
            metrics,
            consumer_group: config.consumer_group.clone(),
        })
    }

    /// The consumer settings for `topic` in this service's group, tuned by `tuning`.
    pub fn consumer_settings(&self, topic: &str, tuning: ConsumerTuning) -> ConsumerSettings {
        ConsumerSettings::new(
            &self.infra.kafka_bootstrap_servers,
            &self.consumer_group,
            topic,
        )
        .tuned(tuning)
    }

    /// Starts a consumer loop with `handler` under `name`; its counters are returned for
    /// the service's own views (`GET /stats`).
    pub fn spawn_consumer<H: Handler>(
        &mut self,
        name: &'static str,
        settings: ConsumerSettings,
        handler: H,
    ) -> Result<Arc<LoopCounters>, StartError> {
        let consumer = MessageConsumer::new(settings, handler)
            .map_err(|e| StartError::Client {
                variable: "KAFKA_BOOTSTRAP_SERVERS",
                reason: e.to_string(),
            })?
            .with_metrics(&self.metrics);
        let counters = consumer.counters();
        self.tasks.spawn(name, consumer.run(self.shutdown.clone()));
        Ok(counters)
    }

    /// Binds `listen_addr` with the service's `routes`, `/healthz` and `/readyz`, every
    /// request traced and counted (`observe`).
    pub async fn serve(
        self,
        listen_addr: SocketAddr,
        routes: Router,
    ) -> Result<Service, StartError> {
        let router = Router::new()
            .merge(routes)
            .merge(self.infra.readiness_router());
        let router = crate::observe(router, &self.metrics);
        let server = HttpServer::bind(listen_addr, router, self.shutdown.clone()).await?;
        Ok(Service {
            server,
            infra: self.infra,
            shutdown: self.shutdown,
            tasks: self.tasks,
            metrics: self.metrics,
        })
    }
}

/// A built service, not yet serving.
#[derive(Debug)]
pub struct Service {
    server: HttpServer,
    infra: Infrastructure,
    shutdown: Shutdown,
    tasks: BackgroundTasks,
    metrics: Metrics,
}

impl Service {
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The switch that stops the running service (tests use it instead of a signal).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// This service's metrics registry, as `GET /metrics` renders it.
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// Serves until SIGINT/SIGTERM, the shutdown switch, or a background loop's early
    /// end; then lets the loops finish their work in hand (the relay its pass and
    /// flush, the consumer its commits) and closes the pool. `Err` names the loops that
    /// ended early: `main` exits with a failure.
    pub async fn run_until_stopped(self, name: &str) -> Result<(), Vec<TaskFailure>> {
        self.server.serve().await;
        let joined = self.tasks.join().await;
        self.infra.close().await;
        tracing::info!("{name} stopped");
        joined
    }
}
