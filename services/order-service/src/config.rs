//! order-service configuration: the shared infrastructure variables plus its own.

use std::time::Duration;

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
    /// `IDEMPOTENCY_RETENTION_HOURS` (default 24, at least 1): how long an
    /// `Idempotency-Key` and its answer are kept. A client retrying later than this gets
    /// a new order, so it must cover the longest retry schedule of any client.
    pub idempotency_retention: Duration,
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
            idempotency_retention: retention_hours(lookup)?,
        })
    }
}

fn retention_hours(lookup: &impl Fn(&str) -> Option<String>) -> Result<Duration, ConfigError> {
    const NAME: &str = "IDEMPOTENCY_RETENTION_HOURS";
    let hours: u32 = parse_var(lookup, NAME, 24)?;
    if hours == 0 {
        // Zero would expire every key at once: idempotency silently off.
        return Err(ConfigError::new(NAME, "0", "at least 1 hour"));
    }
    Ok(Duration::from_secs(u64::from(hours) * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retention(value: Option<&str>) -> Result<Duration, ConfigError> {
        retention_hours(&|name: &str| {
            (name == "IDEMPOTENCY_RETENTION_HOURS")
                .then_some(value)
                .flatten()
                .map(str::to_owned)
        })
    }

    #[test]
    fn idempotency_retention_defaults_to_a_day_and_refuses_zero() {
        assert_eq!(retention(None).ok(), Some(Duration::from_secs(24 * 3600)));
        assert_eq!(
            retention(Some("72")).ok(),
            Some(Duration::from_secs(72 * 3600))
        );
        for bad in ["0", "-1", "1.5", "a day"] {
            let error = retention(Some(bad)).expect_err(bad);
            assert_eq!(error.variable, "IDEMPOTENCY_RETENTION_HOURS");
        }
    }
}
