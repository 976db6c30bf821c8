//! Building and running the service: the same `App` runs in `main` and in tests
//! (on port 0).

use std::net::SocketAddr;

use axum::Router;
use message_consumer::{ConsumerSettings, MessageConsumer};
use outbox::{OutboxGauges, Relay};
use service_runtime::{BackgroundTasks, HttpServer, Infrastructure, Shutdown, StartError};
use telemetry::Metrics;

use crate::api::{self, ApiState};
use crate::direct_publish::DirectPublisher;
use crate::{Config, PaymentResults, PublishMode};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A built, not yet running, order-service.
#[derive(Debug)]
pub struct App {
    server: HttpServer,
    infra: Infrastructure,
    shutdown: Shutdown,
    tasks: BackgroundTasks,
    metrics: Metrics,
    direct: Option<DirectPublisher>,
}

impl App {
    /// Connects to Postgres (creating and migrating the `orders` database), creates the
    /// topics, starts the relay, the payment-outcome consumer and the idempotency-key
    /// purge, and binds the listener. Fails fast on bad configuration.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let infra = Infrastructure::connect(
            &config.infra,
            20,
            &[&outbox::MIGRATOR, &inbox::MIGRATOR, &MIGRATOR],
        )
        .await?;
        let shutdown = Shutdown::default();
        let mut tasks = BackgroundTasks::default();
        // This service's registry, served at GET /metrics; every component counts into it.
        let metrics = Metrics::new();
        let bootstrap = &infra.kafka_bootstrap_servers;
        infra
            .ensure_topics(
                &[&config.order_events_topic, &config.payment_events_topic],
                config.replication_factor,
            )
            .await;

        if config.relay.enabled {
            let producer = infra.producer(&config.relay.producer_settings(bootstrap))?;
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
            service_runtime::metrics_upkeep(metrics.clone(), shutdown.clone()),
        );

        // The inbox of payment outcomes forgets their ids after DEDUP_RETENTION_HOURS,
        // not before the topic forgets the events.
        tasks.spawn(
            "inbox retention",
            inbox::keep_within_retention(
                infra.pool.clone(),
                config.consumer_group.clone(),
                bootstrap.clone(),
                config.payment_events_topic.clone(),
                config.dedup_retention,
                shutdown.clone(),
            ),
        );

        let handler = PaymentResults {
            pool: infra.pool.clone(),
            consumer_group: config.consumer_group.clone(),
        };
        let consumer = MessageConsumer::new(
            ConsumerSettings::new(
                bootstrap,
                &config.consumer_group,
                &config.payment_events_topic,
            )
            .tuned(config.consumer),
            handler,
        )
        .map_err(|e| StartError::Client {
            variable: "KAFKA_BOOTSTRAP_SERVERS",
            reason: e.to_string(),
        })?
        .with_metrics(&metrics);
        tasks.spawn("payment-outcome consumer", consumer.run(shutdown.clone()));

        tasks.spawn(
            "idempotency-key purge",
            api::idempotency::purge_expired(
                infra.pool.clone(),
                config.idempotency_retention,
                shutdown.clone(),
            ),
        );

        // Direct mode: the send log and the fail-fast producer; the re-push job starts
        // by sending what a previous process left unsettled. The relay above still runs
        // (if enabled): outbox rows from an earlier outbox-mode run must still go out.
        let direct = match config.publish_mode {
            PublishMode::Outbox => None,
            PublishMode::Direct => {
                let settings = crate::direct_publish::producer_settings_with_queue(
                    bootstrap,
                    config.direct_queue_max_messages,
                );
                let publisher = DirectPublisher::with_settings(settings, &config.send_log_path)
                    .await
                    .map_err(|e| StartError::Client {
                        variable: "SEND_LOG_PATH",
                        reason: e.to_string(),
                    })?;
                tasks.spawn(
                    "re-push job",
                    publisher.clone().run_repush(shutdown.clone()),
                );
                Some(publisher)
            }
        };

        let api = api::router(ApiState {
            pool: infra.pool.clone(),
            order_events_topic: config.order_events_topic.clone(),
            idempotency_retention: config.idempotency_retention,
            direct: direct.clone(),
        });
        let router = Router::new().merge(api).merge(infra.readiness_router());
        let router = service_runtime::observe(router, &metrics);
        let server = HttpServer::bind(config.infra.listen_addr, router, shutdown.clone()).await?;
        Ok(Self {
            server,
            infra,
            shutdown,
            tasks,
            metrics,
            direct,
        })
    }

    /// This service's metrics registry, as `GET /metrics` renders it.
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// `PUBLISH_MODE=direct`: the send log (tests pause its appends).
    pub fn send_log(&self) -> Option<std::sync::Arc<crate::direct_publish::SendLog>> {
        self.direct
            .as_ref()
            .map(|d| std::sync::Arc::clone(d.send_log()))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The switch that stops the running app (tests use it instead of a signal).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves until SIGINT/SIGTERM or the shutdown switch; then lets the relay finish
    /// its pass and flush, the consumer commit what it applied, and closes the pool.
    pub async fn run_until_stopped(self) {
        self.server.serve().await;
        self.tasks.join().await;
        self.infra.close().await;
        tracing::info!("order-service stopped");
    }
}
