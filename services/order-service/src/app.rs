//! Building and running the service: the same `App` runs in `main` and in tests
//! (on port 0).

use std::net::SocketAddr;

use lifecycle::{Shutdown, TaskFailure};
use service_runtime::{Service, ServiceSkeleton, StartError};
use telemetry::Metrics;

use crate::api::{self, ApiState};
use crate::direct_publish::DirectPublisher;
use crate::{Config, PaymentResults, PublishMode};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A built, not yet running, order-service.
#[derive(Debug)]
pub struct App {
    service: Service,
    direct: Option<DirectPublisher>,
}

impl App {
    /// Starts the shared skeleton (the `orders` database created and migrated, both
    /// topics, the relay, the gauges, the inbox retention of the payment outcomes),
    /// then this service's own parts: the payment-outcome consumer, the idempotency-key
    /// purge, direct mode's publisher, and the order API. Fails fast on bad
    /// configuration.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let common = &config.common;
        let mut skeleton =
            ServiceSkeleton::start(common, 20, &MIGRATOR, &common.payment_events_topic).await?;

        let handler = PaymentResults {
            pool: skeleton.infra.pool.clone(),
            consumer_group: common.consumer_group.clone(),
        };
        let settings = skeleton.consumer_settings(&common.payment_events_topic, common.consumer);
        skeleton.spawn_consumer("payment-outcome consumer", settings, handler)?;

        skeleton.tasks.spawn(
            "idempotency-key purge",
            api::idempotency::purge_expired(
                skeleton.infra.pool.clone(),
                config.idempotency_retention,
                skeleton.shutdown.clone(),
            ),
        );

        // Direct mode: the send log and the fail-fast producer; the re-push job starts
        // by sending what a previous process left unsettled. The relay still runs (if
        // enabled): outbox rows from an earlier outbox-mode run must still go out.
        let direct = match config.publish_mode {
            PublishMode::Outbox => None,
            PublishMode::Direct => {
                let settings = crate::direct_publish::producer_settings_with_queue(
                    &skeleton.infra.kafka_bootstrap_servers,
                    config.direct_queue_max_messages,
                );
                let publisher = DirectPublisher::with_settings(settings, &config.send_log_path)
                    .await
                    .map_err(|e| StartError::Client {
                        variable: "SEND_LOG_PATH",
                        reason: e.to_string(),
                    })?;
                skeleton.tasks.spawn(
                    "re-push job",
                    publisher.clone().run_repush(skeleton.shutdown.clone()),
                );
                Some(publisher)
            }
        };

        let api = api::router(ApiState {
            pool: skeleton.infra.pool.clone(),
            order_events_topic: common.order_events_topic.clone(),
            idempotency_retention: config.idempotency_retention,
            direct: direct.clone(),
        });
        let service = skeleton.serve(common.infra.listen_addr, api).await?;
        Ok(Self { service, direct })
    }

    /// This service's metrics registry, as `GET /metrics` renders it.
    pub fn metrics(&self) -> Metrics {
        self.service.metrics()
    }

    /// `PUBLISH_MODE=direct`: the send log (tests pause its appends).
    pub fn send_log(&self) -> Option<std::sync::Arc<crate::direct_publish::SendLog>> {
        self.direct
            .as_ref()
            .map(|d| std::sync::Arc::clone(d.send_log()))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.service.local_addr()
    }

    /// The switch that stops the running app (tests use it instead of a signal).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.service.shutdown_handle()
    }

    /// Serves until SIGINT/SIGTERM or the shutdown switch; then lets the relay finish
    /// its pass and flush, the consumer commit what it applied, and closes the pool.
    /// `Err`: a background loop ended early and stopped the service.
    pub async fn run_until_stopped(self) -> Result<(), Vec<TaskFailure>> {
        self.service.run_until_stopped("order-service").await
    }
}
