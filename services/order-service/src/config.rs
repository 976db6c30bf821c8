//! order-service configuration: the shared infrastructure variables plus its own.

use std::path::PathBuf;
use std::time::Duration;

use service_config::{ConfigError, Defaults, parse_at_least, parse_var};
use service_runtime::CommonConfig;

/// order-service listens on 8080 and owns the `orders` database.
pub const DEFAULTS: Defaults = Defaults {
    database: "orders",
    port: 8080,
};

#[derive(Debug, Clone)]
pub struct Config {
    /// What every service reads: the infrastructure, both topics (`OrderCreated` goes
    /// to `ORDER_EVENTS_TOPIC`, the outcomes come from `PAYMENT_EVENTS_TOPIC`), the
    /// consumer group (default `order-service`), the relay, the consumer, the inbox
    /// retention and `CRASH_AT` (`service_runtime::CommonConfig`).
    pub common: CommonConfig,
    /// `IDEMPOTENCY_RETENTION_HOURS` (default 24, at least 1): how long an
    /// `Idempotency-Key` and its answer are kept. A client retrying later than this gets
    /// a new order, so it must cover the longest retry schedule of any client.
    pub idempotency_retention: Duration,
    /// `PUBLISH_MODE` (default `outbox`): how `OrderCreated` reaches Kafka.
    pub publish_mode: PublishMode,
    /// `SEND_LOG_PATH` (default `.state/order-service/send.log`): the append-only send
    /// log of `PUBLISH_MODE=direct` (see `direct_publish`). Unused in outbox mode.
    pub send_log_path: PathBuf,
    /// `DIRECT_QUEUE_MAX_MESSAGES` (default `direct_publish::QUEUE_MAX_MESSAGES`, at least
    /// 1): direct mode's producer queue; when it is full a request is answered `503` at
    /// once instead of waiting.
    pub direct_queue_max_messages: u32,
}

/// How `POST /orders` hands its event to Kafka (docs/en/02-produce.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishMode {
    /// The safe default: the event is a row in the order's own transaction; the relay
    /// sends it. Nothing is lost once the commit returns, even with Kafka down.
    Outbox,
    /// The note's "log-based persistence" alternative: commit the order, then send the
    /// event straight to Kafka and wait for the ack, recording each send in a local
    /// send log that a re-push job replays. Lower latency, no outbox table, but a crash
    /// between the commit and the log line loses the event (crash point A2).
    Direct,
}

impl std::str::FromStr for PublishMode {
    type Err = &'static str;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "outbox" => Ok(Self::Outbox),
            "direct" => Ok(Self::Direct),
            _ => Err("expected `outbox` or `direct`"),
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name: &str| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_lookup("order-service", DEFAULTS, lookup)?,
            idempotency_retention: retention_hours(lookup)?,
            publish_mode: parse_var(lookup, "PUBLISH_MODE", PublishMode::Outbox)?,
            send_log_path: parse_var(
                lookup,
                "SEND_LOG_PATH",
                PathBuf::from(".state/order-service/send.log"),
            )?,
            direct_queue_max_messages: parse_at_least(
                lookup,
                "DIRECT_QUEUE_MAX_MESSAGES",
                crate::direct_publish::QUEUE_MAX_MESSAGES,
                1,
            )?,
        })
    }
}

/// Zero would expire every key at once (idempotency silently off): `parse_hours` refuses
/// anything under a minute.
fn retention_hours(lookup: &impl Fn(&str) -> Option<String>) -> Result<Duration, ConfigError> {
    service_config::parse_hours(lookup, "IDEMPOTENCY_RETENTION_HOURS", 24)
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
        assert_eq!(
            retention(Some("1.5")).ok(),
            Some(Duration::from_secs(90 * 60))
        );
        for bad in ["0", "-1", "0.001", "a day"] {
            let error = retention(Some(bad)).expect_err(bad);
            assert_eq!(error.variable, "IDEMPOTENCY_RETENTION_HOURS");
        }
    }

    #[test]
    fn publish_mode_defaults_to_the_outbox_and_refuses_anything_else() {
        let mode = |value: Option<&str>| {
            parse_var(
                &|name: &str| {
                    (name == "PUBLISH_MODE")
                        .then_some(value)
                        .flatten()
                        .map(str::to_owned)
                },
                "PUBLISH_MODE",
                PublishMode::Outbox,
            )
        };
        assert_eq!(mode(None).ok(), Some(PublishMode::Outbox));
        assert_eq!(mode(Some("outbox")).ok(), Some(PublishMode::Outbox));
        assert_eq!(mode(Some("direct")).ok(), Some(PublishMode::Direct));
        for bad in ["", "Direct", "kafka"] {
            let error = mode(Some(bad)).expect_err(bad);
            assert_eq!(error.variable, "PUBLISH_MODE");
        }
    }
}
