//! order-service configuration: the shared infrastructure variables plus its own.

use outbox::RelayConfig;
use service_config::{ConfigError, Defaults, InfraConfig, parse_var};

/// order-service listens on 8080 and owns the `orders` database.
pub const DEFAULTS: Defaults = Defaults {
    database: "orders",
    port: 8080,
};

#[derive(Debug, Clone)]
pub struct Config {
    pub infra: InfraConfig,
    /// `ORDER_EVENTS_TOPIC` (default `order-events`): where `OrderCreated` goes.
    pub order_events_topic: String,
    /// `PAYMENT_EVENTS_TOPIC` (default `payment-events`): the outcomes we consume.
    pub payment_events_topic: String,
    /// `CONSUMER_GROUP` (default `order-service`).
    pub consumer_group: String,
    /// `TOPIC_REPLICATION_FACTOR` (default 3): used when the service creates its topics.
    pub replication_factor: i32,
    /// `RELAY_*`: see `outbox::RelayConfig::from_lookup`.
    pub relay: RelayConfig,
    /// `RELAY_ENABLED` (default true): run the relay inside this process.
    pub relay_enabled: bool,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name: &str| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            infra: InfraConfig::from_lookup(DEFAULTS, lookup)?,
            order_events_topic: parse_var(lookup, "ORDER_EVENTS_TOPIC", "order-events".to_owned())?,
            payment_events_topic: parse_var(
                lookup,
                "PAYMENT_EVENTS_TOPIC",
                "payment-events".to_owned(),
            )?,
            consumer_group: parse_var(lookup, "CONSUMER_GROUP", "order-service".to_owned())?,
            replication_factor: parse_var(lookup, "TOPIC_REPLICATION_FACTOR", 3)?,
            relay: RelayConfig::from_lookup(format!("order-relay-{}", std::process::id()), lookup)?,
            relay_enabled: parse_var(lookup, "RELAY_ENABLED", true)?,
        })
    }
}
