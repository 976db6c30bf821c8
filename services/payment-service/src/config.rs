//! payment-service configuration: the shared infrastructure variables plus its own.

use service_config::{ConfigError, Defaults, InfraConfig};

/// payment-service listens on 8081 and owns the `payments` database.
pub const DEFAULTS: Defaults = Defaults {
    database: "payments",
    port: 8081,
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
