//! The connections every service opens at start-up.

use service_config::InfraConfig;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::{StartError, connect_and_migrate};

/// Postgres (the service's own, migrated), a Redis client and the Kafka address.
#[derive(Debug, Clone)]
pub struct Infrastructure {
    pub pool: PgPool,
    /// Connects lazily: Redis is a fast path, its absence must not stop a start.
    pub redis: redis::Client,
    pub kafka_bootstrap_servers: String,
}

impl Infrastructure {
    /// Fails fast (naming the variable) when the database cannot be reached or migrated.
    pub async fn connect(
        config: &InfraConfig,
        max_connections: u32,
        migrators: &[&Migrator],
    ) -> Result<Self, StartError> {
        let pool = connect_and_migrate(&config.database_url, max_connections, migrators).await?;
        let redis =
            redis::Client::open(config.redis_url.as_str()).map_err(|e| StartError::Client {
                variable: "REDIS_URL",
                reason: e.to_string(),
            })?;
        Ok(Self {
            pool,
            redis,
            kafka_bootstrap_servers: config.kafka_bootstrap_servers.clone(),
        })
    }

    /// Closes the pool at the end of a stop. Bounded: a connection still held by a loop
    /// that did not stop in time must not hang the process's exit.
    pub async fn close(&self) {
        if tokio::time::timeout(std::time::Duration::from_secs(5), self.pool.close())
            .await
            .is_err()
        {
            tracing::error!("database pool did not close within 5s; exiting anyway");
        }
    }

    /// A producer with `settings` (the relay's: `RelayConfig::producer_settings`).
    pub fn producer(
        &self,
        settings: &kafka_config::ProducerSettings,
    ) -> Result<rdkafka::producer::FutureProducer, StartError> {
        settings
            .client_config()
            .create()
            .map_err(|e| StartError::Client {
                variable: "KAFKA_BOOTSTRAP_SERVERS",
                reason: e.to_string(),
            })
    }

    /// Creates each topic and its dead-letter topic (`<topic>.dlq`) if missing, with
    /// `replication_factor` replicas. Kafka being down at start-up is not fatal: the
    /// outbox keeps events until the relay can publish them, so this only warns.
    pub async fn ensure_topics(&self, topics: &[&str], replication_factor: i32) {
        for topic in topics {
            for name in [(*topic).to_owned(), kafka_config::dead_letter_topic(topic)] {
                let created = tokio::time::timeout(
                    std::time::Duration::from_secs(15),
                    kafka_config::create_topic(
                        &self.kafka_bootstrap_servers,
                        &name,
                        6,
                        replication_factor,
                    ),
                )
                .await;
                match created {
                    Ok(Ok(())) => tracing::debug!(topic = %name, "topic present"),
                    Ok(Err(e)) => {
                        tracing::warn!(topic = %name, error = %e, "could not create topic");
                    }
                    Err(_) => {
                        tracing::warn!(topic = %name, "Kafka did not answer topic creation in 15s");
                    }
                }
            }
        }
    }

    /// `/healthz` and `/readyz` over these connections.
    pub fn readiness_router(&self) -> axum::Router {
        readiness::router(readiness::Dependencies {
            postgres: self.pool.clone(),
            redis: self.redis.clone(),
            kafka_bootstrap_servers: self.kafka_bootstrap_servers.clone(),
        })
    }
}
