//! Configuration from environment variables, with documented defaults and errors that
//! name the variable.
//!
//! Both services read the same infrastructure settings (`DATABASE_URL`, `REDIS_URL`,
//! `KAFKA_BOOTSTRAP_SERVERS`, `PORT`). A bad value must stop the process at start-up
//! with one line that says which variable and what is wrong, never a panic deep inside
//! a client library minutes later.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use url::Url;

/// A configuration value that could not be used. `Display` is the one line printed
/// before the process exits.
#[derive(Debug, thiserror::Error)]
#[error("{variable}={value:?}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    /// The offending value, with any password replaced by `***`.
    pub value: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            variable,
            value: redact(value),
            reason: reason.into(),
        }
    }
}

/// Where a service finds its infrastructure, and where it listens.
#[derive(Debug, Clone)]
pub struct InfraConfig {
    /// `DATABASE_URL`: the service's own Postgres database (created if missing).
    pub database_url: String,
    /// `REDIS_URL`: the Redis fast path (optional at run time: correctness never needs it).
    pub redis_url: String,
    /// `KAFKA_BOOTSTRAP_SERVERS`: comma-separated `host:port` list of the Kafka cluster.
    pub kafka_bootstrap_servers: String,
    /// `HOST` + `PORT`: the HTTP listener.
    pub listen_addr: SocketAddr,
}

/// Per-service defaults: each service has its own database and port.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub database: &'static str,
    pub port: u16,
}

pub const DEFAULT_POSTGRES_SERVER: &str = "postgres://postgres:postgres@127.0.0.1:5432";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_KAFKA_BOOTSTRAP_SERVERS: &str = "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094";

impl InfraConfig {
    /// Reads the process environment.
    pub fn from_env(defaults: Defaults) -> Result<Self, ConfigError> {
        Self::from_lookup(defaults, |name| std::env::var(name).ok())
    }

    /// Reads from any lookup function (tests pass a map instead of the environment).
    pub fn from_lookup(
        defaults: Defaults,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let default_db = format!("{DEFAULT_POSTGRES_SERVER}/{}", defaults.database);
        let database_url = lookup("DATABASE_URL").unwrap_or(default_db);
        parse_url("DATABASE_URL", &database_url, &["postgres", "postgresql"])?;

        let redis_url = lookup("REDIS_URL").unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
        parse_url("REDIS_URL", &redis_url, &["redis", "rediss"])?;

        let kafka_bootstrap_servers = lookup("KAFKA_BOOTSTRAP_SERVERS")
            .unwrap_or_else(|| DEFAULT_KAFKA_BOOTSTRAP_SERVERS.to_owned());
        parse_bootstrap_servers("KAFKA_BOOTSTRAP_SERVERS", &kafka_bootstrap_servers)?;

        let host = match lookup("HOST") {
            Some(raw) => raw
                .parse::<IpAddr>()
                .map_err(|e| ConfigError::new("HOST", &raw, format!("not an IP address: {e}")))?,
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let port = match lookup("PORT") {
            Some(raw) => raw.parse::<u16>().map_err(|e| {
                ConfigError::new("PORT", &raw, format!("not a TCP port (0-65535): {e}"))
            })?,
            None => defaults.port,
        };

        Ok(Self {
            database_url,
            redis_url,
            kafka_bootstrap_servers,
            listen_addr: SocketAddr::new(host, port),
        })
    }
}

/// Reads `name` through `lookup` and parses it, or returns `default` when unset.
pub fn parse_var<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match lookup(name) {
        None => Ok(default),
        Some(raw) => raw
            .parse::<T>()
            .map_err(|e| ConfigError::new(name, &raw, format!("cannot parse: {e}"))),
    }
}

/// Like [`parse_var`], for counts that make no sense below `min` (a relay with zero
/// lanes, a row given up before its first try): a smaller value is refused at start.
pub fn parse_at_least<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    min: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    let value = parse_var(lookup, name, default)?;
    if value < min {
        return Err(ConfigError::new(
            name,
            &value.to_string(),
            format!("at least {min}"),
        ));
    }
    Ok(value)
}

/// A retention in hours (`OUTBOX_RETENTION_HOURS`, `DEDUP_RETENTION_HOURS`,
/// `IDEMPOTENCY_RETENTION_HOURS`): a decimal number, so that a drill can keep rows for
/// minutes (`0.25` = 15 min) where a deployment keeps them for days. Less than a minute
/// is refused: it would forget a record while its copies can still arrive.
pub fn parse_hours(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default_hours: u32,
) -> Result<std::time::Duration, ConfigError> {
    let Some(raw) = lookup(name) else {
        return Ok(std::time::Duration::from_secs(
            u64::from(default_hours) * 3600,
        ));
    };
    let hours: f64 = raw
        .trim()
        .parse()
        .map_err(|e| ConfigError::new(name, &raw, format!("cannot parse: {e}")))?;
    // 10 years is far beyond any topic's retention; the bound keeps the arithmetic finite.
    if !(hours.is_finite() && (1.0 / 60.0..=87_600.0).contains(&hours)) {
        return Err(ConfigError::new(
            name,
            &raw,
            "a number of hours from 0.0167 (one minute) to 87600 (decimals allowed: 0.25 = 15 min)",
        ));
    }
    Ok(std::time::Duration::from_millis(
        (hours * 3_600_000.0).round() as u64,
    ))
}

/// Parses `value` as a URL whose scheme is one of `schemes`.
pub fn parse_url(
    variable: &'static str,
    value: &str,
    schemes: &[&str],
) -> Result<Url, ConfigError> {
    let url = Url::parse(value)
        .map_err(|e| ConfigError::new(variable, value, format!("not a URL: {e}")))?;
    if !schemes.contains(&url.scheme()) {
        return Err(ConfigError::new(
            variable,
            value,
            format!("scheme must be one of {schemes:?}, got {:?}", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(variable, value, "the URL has no host"));
    }
    Ok(url)
}

/// Checks a Kafka bootstrap list: `host:port[,host:port...]`.
pub fn parse_bootstrap_servers(variable: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::new(
            variable,
            value,
            "empty; expected host:port[,host:port...]",
        ));
    }
    for entry in value.split(',') {
        let entry = entry.trim();
        let Some((host, port)) = entry.rsplit_once(':') else {
            return Err(ConfigError::new(
                variable,
                value,
                format!("{entry:?} has no :port"),
            ));
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(ConfigError::new(
                variable,
                value,
                format!("{entry:?} is not host:port"),
            ));
        }
    }
    Ok(())
}

/// Replaces the password of a URL with `***` so that errors and logs never print it.
pub fn redact(value: &str) -> String {
    match Url::parse(value) {
        Ok(mut url) if url.password().is_some() => {
            // Setting a password only fails for URLs that cannot have one.
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(_) => value.to_owned(),
        // A value that is not a valid URL is exactly what an error message quotes: it
        // may still hold `user:password@`. Hide what stands between the user's `:` and
        // the last `@`.
        Err(_) => {
            let start = value.find("://").map_or(0, |i| i + 3);
            let Some(at) = value[start..].rfind('@').map(|i| start + i) else {
                return value.to_owned();
            };
            match value[start..at].find(':').map(|i| start + i) {
                Some(colon) => format!("{}:***{}", &value[..colon], &value[at..]),
                None => value.to_owned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn redact_hides_the_password_of_a_url_it_cannot_parse_too() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/orders"),
            "postgres://app:***@db:5432/orders"
        );
        // An invalid port: not a URL, yet the password must not reach a log line.
        let unparsable = "postgres://app:s3cret@db:notaport/orders";
        assert!(Url::parse(unparsable).is_err());
        assert_eq!(redact(unparsable), "postgres://app:***@db:notaport/orders");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn retention_hours_take_decimals_from_one_minute_up() {
        let hours = |value: Option<&str>| {
            parse_hours(
                &|_: &str| value.map(str::to_owned),
                "DEDUP_RETENTION_HOURS",
                168,
            )
        };
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(hours(None).ok(), Some(168 * hour));
        assert_eq!(hours(Some("24")).ok(), Some(24 * hour));
        assert_eq!(hours(Some("0.25")).ok(), Some(hour / 4));
        assert_eq!(
            hours(Some("0.0167")).ok(),
            Some(std::time::Duration::from_millis(60_120))
        );
        for bad in ["0", "0.01", "-1", "NaN", "inf", "100000", "a week", ""] {
            let error = hours(Some(bad)).expect_err(bad);
            assert_eq!(error.variable, "DEDUP_RETENTION_HOURS");
        }
    }

    const DEFAULTS: Defaults = Defaults {
        database: "orders",
        port: 8080,
    };

    fn config(vars: &[(&str, &str)]) -> Result<InfraConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        InfraConfig::from_lookup(DEFAULTS, |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_point_at_the_native_stack() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(
            c.database_url,
            "postgres://postgres:postgres@127.0.0.1:5432/orders"
        );
        assert_eq!(c.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(c.kafka_bootstrap_servers, DEFAULT_KAFKA_BOOTSTRAP_SERVERS);
        assert_eq!(c.listen_addr.port(), 8080);
    }

    #[test]
    fn an_unparsable_url_names_the_variable_and_hides_the_password() {
        let err =
            config(&[("DATABASE_URL", "mysql://u:secret@db/x")]).expect_err("must be rejected");
        assert_eq!(err.variable, "DATABASE_URL");
        let line = err.to_string();
        assert!(line.starts_with("DATABASE_URL="), "{line}");
        assert!(line.contains("scheme must be one of"), "{line}");
        assert!(!line.contains("secret"), "{line}");

        let err = config(&[("REDIS_URL", "not a url")]).expect_err("must be rejected");
        assert_eq!(err.variable, "REDIS_URL");
    }

    #[test]
    fn bootstrap_servers_and_port_are_checked() {
        let err = config(&[("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092,broker")])
            .expect_err("must be rejected");
        assert_eq!(err.variable, "KAFKA_BOOTSTRAP_SERVERS");
        assert!(
            err.reason.contains("\"broker\" has no :port"),
            "{}",
            err.reason
        );

        let err = config(&[("PORT", "80800")]).expect_err("must be rejected");
        assert_eq!(err.variable, "PORT");
    }
}
