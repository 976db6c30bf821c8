//! order-service configuration: the shared infrastructure variables plus its own.

use service_config::{ConfigError, Defaults, InfraConfig};

/// order-service listens on 8080 and owns the `orders` database.
pub const DEFAULTS: Defaults = Defaults {
    database: "orders",
    port: 8080,
};

#[derive(Debug, Clone)]
pub struct Config {
    pub infra: InfraConfig,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            infra: InfraConfig::from_env(DEFAULTS)?,
        })
    }
}
