//! payment-service configuration: the shared infrastructure variables plus its own.

use std::time::Duration;

use service_config::{ConfigError, Defaults, parse_var};
use service_runtime::CommonConfig;

use crate::provider::ProviderSettings;

/// payment-service listens on 8081 and owns the `payments` database.
pub const DEFAULTS: Defaults = Defaults {
    database: "payments",
    port: 8081,
};

#[derive(Debug, Clone)]
pub struct Config {
    /// What every service reads: the infrastructure, both topics (`OrderCreated` comes
    /// from `ORDER_EVENTS_TOPIC`, outcomes go to `PAYMENT_EVENTS_TOPIC`), the consumer
    /// group (default `payment-service`), the relay, the consumer, the inbox retention
    /// (`DEDUP_RETENTION_HOURS`, compared with the order topic's `retention.ms` at
    /// start) and `CRASH_AT` (`service_runtime::CommonConfig`).
    pub common: CommonConfig,
    /// `PROVIDER_LATENCY_MS` (default 0), `PROVIDER_FAILURE_RATE` (0.0-1.0, default 0).
    pub provider: ProviderSettings,
    /// `DEDUP_FAST_PATH` (true|false, default true): ask Redis before the inbox, so
    /// known duplicates skip the database. `false` leaves the inbox alone, which is
    /// just as correct, only slower on duplicates (see `inbox::FastPath`).
    pub dedup_fast_path: bool,
    /// `DEDUP_TTL_SECS` (default 86400): how long Redis remembers a message id.
    pub dedup_ttl: Duration,
    /// Teaching toggles for the failure drills (docs/en/09-failure-matrix.md), safe by
    /// default; each unsafe value removes one defence so a drill can show what it buys.
    pub unsafe_toggles: UnsafeToggles,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct UnsafeToggles {
    /// `DEDUP_INBOX` (default true). `false`: no inbox record, no inbox check — a
    /// redelivered event reaches the provider and the payment insert again, and only
    /// the business key `UNIQUE(order_id)` stands in the way.
    pub inbox_off: bool,
    /// `CONSUMER_OFFSET_COMMIT` (`after-effect`, default, or `before-effect`).
    pub offset_commit: message_consumer::OffsetCommit,
    /// `DEDUP_BUSINESS_KEY` (default true). `false`: payments go to the teaching table
    /// `payments_without_business_key`, which has no `UNIQUE(order_id)`, so a copy that
    /// got past the other layers is paid twice (the matrix's "every layer off" row).
    pub business_key_off: bool,
    /// `DEDUP_PROVIDER_KEY` (default true). `false`: the provider is called without an
    /// idempotency key and charges again on every call (`ProviderSettings`).
    pub provider_key_off: bool,
}

impl UnsafeToggles {
    /// Whether any unsafe toggle is on (a warning at start).
    pub fn any(&self) -> bool {
        self.inbox_off
            || self.business_key_off
            || self.provider_key_off
            || self.offset_commit != message_consumer::OffsetCommit::AfterEffect
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name: &str| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let failure_rate: f64 = parse_var(lookup, "PROVIDER_FAILURE_RATE", 0.0)?;
        if !(0.0..=1.0).contains(&failure_rate) {
            return Err(ConfigError::new(
                "PROVIDER_FAILURE_RATE",
                &failure_rate.to_string(),
                "a probability between 0.0 and 1.0",
            ));
        }
        let dedup_ttl_secs: u64 = parse_var(lookup, "DEDUP_TTL_SECS", 86_400)?;
        if dedup_ttl_secs == 0 {
            return Err(ConfigError::new(
                "DEDUP_TTL_SECS",
                "0",
                "a positive number of seconds (Redis rejects a zero TTL)",
            ));
        }
        Ok(Self {
            common: CommonConfig::from_lookup("payment-service", DEFAULTS, lookup)?,
            provider: ProviderSettings {
                latency: Duration::from_millis(parse_var(lookup, "PROVIDER_LATENCY_MS", 0)?),
                failure_rate,
                without_idempotency_key: !parse_var(lookup, "DEDUP_PROVIDER_KEY", true)?,
            },
            dedup_fast_path: parse_var(lookup, "DEDUP_FAST_PATH", true)?,
            dedup_ttl: Duration::from_secs(dedup_ttl_secs),
            unsafe_toggles: UnsafeToggles {
                inbox_off: !parse_var(lookup, "DEDUP_INBOX", true)?,
                offset_commit: parse_var(
                    lookup,
                    "CONSUMER_OFFSET_COMMIT",
                    message_consumer::OffsetCommit::AfterEffect,
                )?,
                business_key_off: !parse_var(lookup, "DEDUP_BUSINESS_KEY", true)?,
                provider_key_off: !parse_var(lookup, "DEDUP_PROVIDER_KEY", true)?,
            },
        })
    }
}
