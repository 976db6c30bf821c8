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
        migrator: &Migrator,
    ) -> Result<Self, StartError> {
        let pool = connect_and_migrate(&config.database_url, max_connections, migrator).await?;
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

    /// `/healthz` and `/readyz` over these connections.
    pub fn readiness_router(&self) -> axum::Router {
        readiness::router(readiness::Dependencies {
            postgres: self.pool.clone(),
            redis: self.redis.clone(),
            kafka_bootstrap_servers: self.kafka_bootstrap_servers.clone(),
        })
    }
}
