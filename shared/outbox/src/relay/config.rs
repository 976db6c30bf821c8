//! How a relay claims, sends and paces its work: `RELAY_*` from the environment.

use std::time::Duration;

use super::ClaimStrategy;

/// `OUTBOX_RETENTION_HOURS`' default: a week.
pub const DEFAULT_RETENTION_HOURS: u32 = 168;
/// The purge runs every tenth of the retention, and at least this often: deleting a
/// little often keeps each `DELETE` short.
pub const MAX_PURGE_INTERVAL: Duration = Duration::from_secs(300);

/// The two ways of waiting for the broker's acks, the study note's two variants of
/// "synchronous confirmation" (docs/en/02-produce.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMode {
    /// "Send, then mark the row from the delivery callback": claims keep flowing while
    /// earlier sends await their acks, and each ack is marked as it arrives, in batched
    /// statements. At most `RELAY_MAX_IN_FLIGHT` rows are claimed and not yet acked.
    Stream,
    /// "Send, wait for the acks, then mark": a pass claims a batch, waits for every ack
    /// of it, marks it, and only then claims again (up to `RELAY_CONCURRENCY` passes at
    /// a time). Kept because it teaches the first variant, and for comparison.
    Wave,
}

impl std::str::FromStr for RelayMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stream" => Ok(Self::Stream),
            "wave" => Ok(Self::Wave),
            other => Err(format!("{other:?}: expected stream or wave")),
        }
    }
}

/// How a relay claims and paces its work.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Identifies this relay in `claimed_by` (host/process/task).
    pub relay_id: String,
    pub strategy: ClaimStrategy,
    /// `RELAY_MODE`: streaming (default) or waves.
    pub mode: RelayMode,
    /// Rows claimed per pass (wave mode) or per claim (stream mode).
    pub batch_size: i64,
    /// `RELAY_CONCURRENCY`, at least 1. Wave mode: passes in flight at most, the lanes
    /// of [`super::Relay::run`]. One pass waits for every ack of its batch before it
    /// marks the batch sent; while a backlog lasts, other lanes claim and send the next
    /// batches meanwhile. Stream mode: claims in flight at most, and as many marks.
    /// Per-key order still holds: a key whose earlier event is claimed by another pass
    /// (or claim) and not yet marked sent is not claimed (`claim.rs`).
    pub concurrency: usize,
    /// Rows claimed and not yet settled (acked and marked, or released) at most, in
    /// stream mode (`RELAY_MAX_IN_FLIGHT`, at least 1). It bounds what a crash re-sends
    /// (crash points R1 and R3) and what waits in the producer's queue. The default is
    /// measured (`make bench` sweeps 200 to 5,000): fewer rows in flight starve the
    /// claims and marks, which set the pace; more only wait longer in the producer's
    /// queue (an ack took 180 ms per row at 5,000 against 95 ms at 2,000).
    pub max_in_flight: usize,
    /// How long a claim holds. A relay that dies holding rows delays them by this much
    /// (crash point R1/R2/R3); a relay slower than this may see its rows re-sent.
    /// At least twice `delivery_timeout` (checked by `from_lookup`).
    pub lease: Duration,
    /// The relay producer's `delivery.timeout.ms` (`RELAY_DELIVERY_TIMEOUT_MS`): how
    /// long one send may take, retries included, before it fails back to the relay.
    ///
    /// **The lease must outlast the send.** A claim whose lease runs out while its send
    /// is still in flight is claimed again by another relay (or this one), which sends
    /// a second copy: harmless, the inbox absorbs it, but every slow send then costs a
    /// duplicate, and with the two equal (30 s each, before) every send slower than
    /// the lease did. Twice the timeout leaves room for the mark after the ack.
    pub delivery_timeout: Duration,
    /// The fallback poll when no notification arrives (the note's "scheduled job").
    pub poll_interval: Duration,
    /// The shortest time between the starts of two passes of the lead lane, or between
    /// two claims of the streaming relay that were not full (`RELAY_LINGER_MS`): what a
    /// row may wait for company under a steady stream.
    pub linger: Duration,
    /// Wait for `LISTEN outbox_new` notifications between passes.
    pub listen_notify: bool,
    /// Run the relay inside the service (`RELAY_ENABLED`). Off when `outbox-relay`
    /// processes do the work instead.
    pub enabled: bool,
    /// Claims a row gets before a **permanent** send failure (no such topic, record too
    /// large, not authorized: `publish::SendFailure`) gives it up as `FAILED`
    /// (`RELAY_MAX_ATTEMPTS`, at least 1). With the backoff capped at 30 s, 20 attempts
    /// keep such a row trying for about seven minutes. Transient failures (a broker
    /// down) are retried without limit and never give a row up.
    pub max_attempts: i32,
    /// How long `SENT` rows are kept before housekeeping deletes them
    /// (`OUTBOX_RETENTION_HOURS`, in hours, decimals allowed).
    pub retention: Duration,
    /// How often [`super::Relay::run`] runs the housekeeping step: a tenth of the
    /// retention, at most [`MAX_PURGE_INTERVAL`] (`lifecycle::purge_interval`).
    pub purge_interval: Duration,
}

impl RelayConfig {
    pub fn new(relay_id: impl Into<String>) -> Self {
        Self {
            relay_id: relay_id.into(),
            strategy: ClaimStrategy::SkipLocked,
            mode: RelayMode::Stream,
            batch_size: 200,
            concurrency: 4,
            max_in_flight: 2_000,
            lease: Duration::from_secs(30),
            // 15 s (the producer's default elsewhere is 30 s): half the lease.
            delivery_timeout: Duration::from_secs(15),
            poll_interval: Duration::from_millis(500),
            linger: Duration::from_millis(20),
            listen_notify: true,
            enabled: true,
            max_attempts: 20,
            retention: Duration::from_secs(u64::from(DEFAULT_RETENTION_HOURS) * 3600),
            purge_interval: MAX_PURGE_INTERVAL,
        }
    }

    /// Reads `RELAY_MODE` (`stream` | `wave`, default stream), `RELAY_CLAIM_STRATEGY`
    /// (`skip-locked` | `optimistic-lock`), `RELAY_BATCH_SIZE`, `RELAY_CONCURRENCY`
    /// (default 4), `RELAY_MAX_IN_FLIGHT` (default 2000), `RELAY_LEASE_MS` (default
    /// 30000), `RELAY_DELIVERY_TIMEOUT_MS` (default 15000, at most half the lease),
    /// `RELAY_POLL_MS`, `RELAY_LINGER_MS`, `RELAY_LISTEN_NOTIFY`, `RELAY_ENABLED`
    /// (true | false), `RELAY_MAX_ATTEMPTS` (default 20) and `OUTBOX_RETENTION_HOURS`
    /// (default 168).
    pub fn from_lookup(
        relay_id: impl Into<String>,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, service_config::ConfigError> {
        use service_config::{parse_at_least, parse_var};
        let d = Self::new(relay_id);
        // Zero attempts would give every row up before its first try; zero lanes, a
        // batch of zero or no room in flight would never send.
        let max_attempts = parse_at_least(lookup, "RELAY_MAX_ATTEMPTS", d.max_attempts, 1)?;
        let concurrency = parse_at_least(lookup, "RELAY_CONCURRENCY", d.concurrency, 1)?;
        let max_in_flight = parse_at_least(lookup, "RELAY_MAX_IN_FLIGHT", d.max_in_flight, 1)?;
        // The defaults are `new`'s, written once there.
        let retention =
            service_config::parse_hours(lookup, "OUTBOX_RETENTION_HOURS", DEFAULT_RETENTION_HOURS)?;
        // Pauses are bounded: a huge value would hold every event back (and overflow the
        // timer that sleeps on it, a panic instead of a refusal).
        let linger_ms = parse_millis_at_most(lookup, "RELAY_LINGER_MS", millis(d.linger), 10_000)?;
        let poll_ms =
            parse_millis_at_most(lookup, "RELAY_POLL_MS", millis(d.poll_interval), 3_600_000)?;
        let lease_ms: u64 = parse_var(lookup, "RELAY_LEASE_MS", millis(d.lease))?;
        let delivery_timeout_ms = parse_millis_at_most(
            lookup,
            "RELAY_DELIVERY_TIMEOUT_MS",
            millis(d.delivery_timeout),
            u64::from(u32::MAX),
        )?;
        if lease_ms < delivery_timeout_ms.saturating_mul(2) {
            return Err(service_config::ConfigError::new(
                "RELAY_LEASE_MS",
                &lease_ms.to_string(),
                format!(
                    "at least twice RELAY_DELIVERY_TIMEOUT_MS ({delivery_timeout_ms}): a send \
                     still in flight when its lease ran out would be claimed and sent again"
                ),
            ));
        }
        Ok(Self {
            strategy: parse_var(lookup, "RELAY_CLAIM_STRATEGY", d.strategy)?,
            mode: parse_var(lookup, "RELAY_MODE", d.mode)?,
            batch_size: parse_at_least(lookup, "RELAY_BATCH_SIZE", d.batch_size, 1)?,
            concurrency,
            max_in_flight,
            lease: Duration::from_millis(lease_ms),
            delivery_timeout: Duration::from_millis(delivery_timeout_ms),
            poll_interval: Duration::from_millis(poll_ms),
            linger: Duration::from_millis(linger_ms),
            listen_notify: parse_var(lookup, "RELAY_LISTEN_NOTIFY", d.listen_notify)?,
            enabled: parse_var(lookup, "RELAY_ENABLED", d.enabled)?,
            max_attempts,
            retention,
            purge_interval: lifecycle::purge_interval(retention, MAX_PURGE_INTERVAL),
            relay_id: d.relay_id,
        })
    }
}

impl RelayConfig {
    /// The reliable producer's settings (`ProducerSettings::reliable`: acks=all,
    /// idempotence) with this relay's delivery timeout.
    pub fn producer_settings(&self, bootstrap_servers: &str) -> kafka_config::ProducerSettings {
        let mut settings = kafka_config::ProducerSettings::reliable(bootstrap_servers);
        settings.delivery_timeout_ms =
            u32::try_from(self.delivery_timeout.as_millis()).unwrap_or(u32::MAX);
        settings
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A number of milliseconds no larger than `max`, or a one-line error naming `name`.
fn parse_millis_at_most(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    max: u64,
) -> Result<u64, service_config::ConfigError> {
    let value: u64 = service_config::parse_var(lookup, name, default)?;
    if value > max {
        return Err(service_config::ConfigError::new(
            name,
            &value.to_string(),
            format!("at most {max} (milliseconds)"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_linger_or_poll_is_refused_with_one_line() {
        let error = config(&[("RELAY_LINGER_MS", "18446744073709551615")])
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains("RELAY_LINGER_MS") && error.contains("at most 10000"),
            "{error}"
        );
        assert!(config(&[("RELAY_POLL_MS", "99999999999")]).is_err());
        assert!(config(&[("RELAY_BATCH_SIZE", "0")]).is_err());
    }

    fn config(vars: &[(&str, &str)]) -> Result<RelayConfig, service_config::ConfigError> {
        RelayConfig::from_lookup("r", &|name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn a_lease_shorter_than_twice_the_delivery_timeout_is_refused_with_one_line() {
        let error = config(&[("RELAY_LEASE_MS", "20000")])
            .expect_err("20 s lease against the 15 s default delivery timeout")
            .to_string();
        assert!(
            error.contains("RELAY_LEASE_MS") && error.contains("RELAY_DELIVERY_TIMEOUT_MS"),
            "{error}"
        );
        assert!(!error.contains('\n'), "{error}");
        let short = config(&[
            ("RELAY_LEASE_MS", "2000"),
            ("RELAY_DELIVERY_TIMEOUT_MS", "1000"),
        ])
        .expect("twice is enough");
        assert_eq!(short.producer_settings("k:9092").delivery_timeout_ms, 1000);
        let defaults = config(&[]).expect("the defaults pass their own rule");
        assert!(defaults.lease >= 2 * defaults.delivery_timeout);
    }

    #[test]
    fn defaults_stream_with_two_thousand_rows_in_flight() {
        let c = config(&[]).expect("defaults");
        assert_eq!(c.mode, RelayMode::Stream);
        assert_eq!(
            (c.max_in_flight, c.concurrency, c.batch_size, c.max_attempts),
            (2_000, 4, 200, 20)
        );
    }

    #[test]
    fn the_wave_mode_is_selectable_and_a_typo_is_refused() {
        let wave = config(&[("RELAY_MODE", "wave")]).expect("wave");
        assert_eq!(wave.mode, RelayMode::Wave);
        let error = config(&[("RELAY_MODE", "waves")])
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains("RELAY_MODE") && error.contains("stream or wave"),
            "{error}"
        );
    }

    #[test]
    fn counts_below_one_are_refused() {
        assert_eq!(
            config(&[("RELAY_CONCURRENCY", "1")])
                .expect("one lane")
                .concurrency,
            1
        );
        for name in [
            "RELAY_CONCURRENCY",
            "RELAY_MAX_ATTEMPTS",
            "RELAY_MAX_IN_FLIGHT",
            "RELAY_BATCH_SIZE",
        ] {
            let error = config(&[(name, "0")]).expect_err("refused").to_string();
            assert!(
                error.contains(name) && error.contains("at least 1"),
                "{error}"
            );
        }
    }
}
