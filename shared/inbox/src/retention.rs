//! Dedup retention: the inbox forgets event ids after `DEDUP_RETENTION_HOURS`, and must
//! not forget them before the topic forgets the events (docs/en/06-idempotency.md).
//!
//! Every service with an inbox runs both halves: the purge of its own group's rows, every
//! tenth of the retention and at least hourly ([`purge_periodically`]), and, at start,
//! the comparison with the topic's retention ([`warn_if_shorter_than_topic`]). (They
//! lived in payment-service before, so order-service's inbox grew for ever.)

use std::time::Duration;

use lifecycle::Shutdown;
use sqlx::PgPool;

/// `DEDUP_RETENTION_HOURS`'s default: a week, the topics' `retention.ms` here.
pub const DEFAULT_RETENTION_HOURS: u32 = 168;

/// Reads `DEDUP_RETENTION_HOURS` (default [`DEFAULT_RETENTION_HOURS`]; decimals allowed,
/// at least a minute: `service_config::parse_hours`).
pub fn retention_from_lookup(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Duration, service_config::ConfigError> {
    service_config::parse_hours(lookup, "DEDUP_RETENTION_HOURS", DEFAULT_RETENTION_HOURS)
}

/// The purge runs every tenth of the retention, and at least this often. Deleting a
/// little often keeps each `DELETE` short.
pub const MAX_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// The inbox's upkeep, one task per service with an inbox: the dedup retention checked
/// against the topic's once ([`warn_if_shorter_than_topic`]), then the group's rows
/// purged every tenth of the retention, at least hourly ([`purge_periodically`]), until
/// shutdown.
pub async fn keep_within_retention(
    pool: PgPool,
    consumer_group: String,
    bootstrap_servers: String,
    topic: String,
    retention: Duration,
    shutdown: Shutdown,
) {
    warn_if_shorter_than_topic(&bootstrap_servers, &topic, retention).await;
    purge_periodically(pool, consumer_group, retention, shutdown).await;
}

/// Deletes the group's inbox rows older than `retention`, now and then every
/// `lifecycle::purge_interval(retention, MAX_PURGE_INTERVAL)`, until shutdown.
pub async fn purge_periodically(
    pool: PgPool,
    consumer_group: String,
    retention: Duration,
    shutdown: Shutdown,
) {
    let interval = lifecycle::purge_interval(retention, MAX_PURGE_INTERVAL);
    lifecycle::every(interval, &shutdown, || async {
        match crate::purge_older_than(&pool, &consumer_group, retention).await {
            Ok(deleted) => tracing::info!(
                deleted,
                retention_s = retention.as_secs(),
                group = %consumer_group,
                "inbox purge"
            ),
            // The next pass tries again; a missed purge only keeps rows longer.
            Err(error) => tracing::warn!(%error, "inbox purge failed"),
        }
    })
    .await;
}

/// Whether the inbox remembers an id at least as long as the topic keeps the event.
/// `topic_retention` `None` is "for ever": no finite dedup retention covers it.
pub fn dedup_outlives_topic(dedup: Duration, topic_retention: Option<Duration>) -> bool {
    topic_retention.is_some_and(|topic| dedup >= topic)
}

/// Warns loudly when a copy of an event could still be read after its dedup record is
/// purged: that copy would be applied again.
pub async fn warn_if_shorter_than_topic(bootstrap_servers: &str, topic: &str, dedup: Duration) {
    match kafka_config::topic_retention(bootstrap_servers, topic).await {
        Ok(topic_retention) if !dedup_outlives_topic(dedup, topic_retention) => {
            let topic_retention_ms =
                topic_retention.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            tracing::warn!(
                topic,
                topic_retention_ms,
                dedup_retention_ms = u64::try_from(dedup.as_millis()).unwrap_or(u64::MAX),
                "DEDUP_RETENTION_HOURS is shorter than the topic's retention.ms: a duplicate \
                 read (replayed, or re-consumed from an old offset) after its inbox record was \
                 purged would be applied twice; raise DEDUP_RETENTION_HOURS to at least the \
                 topic retention"
            );
        }
        Ok(topic_retention) => tracing::info!(
            topic,
            topic_retention_ms = topic_retention.map_or(0, |d| d.as_millis() as u64),
            dedup_retention_ms = dedup.as_millis() as u64,
            "dedup retention covers the topic's retention"
        ),
        Err(error) => {
            tracing::warn!(topic, %error, "could not read the topic's retention.ms to compare with DEDUP_RETENTION_HOURS");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn dedup_must_cover_the_topic_retention() {
        assert!(dedup_outlives_topic(168 * HOUR, Some(168 * HOUR)));
        assert!(dedup_outlives_topic(200 * HOUR, Some(168 * HOUR)));
        assert!(!dedup_outlives_topic(24 * HOUR, Some(168 * HOUR)));
        assert!(!dedup_outlives_topic(10_000 * HOUR, None), "kept for ever");
    }
}
