//! The outbox seen from outside: how many rows wait in each state, and how long the
//! oldest unsent one has waited (docs/en/07-tracing-and-metrics.md).
//!
//! These are the produce stage's loss alarms. A growing `PENDING` count or a growing
//! `outbox_oldest_unsent_age_seconds` means events are accepted but not reaching Kafka
//! (relay stopped, broker unreachable); a non-zero `FAILED` count means events that will
//! not reach it until an operator runs `outbox::retry_failed`. "Unsent" is every state
//! but `SENT`, `FAILED` included: a given-up row is still an event Kafka never got.
//!
//! Sampled by a query every few seconds rather than counted in the code, because rows
//! are written and moved by several processes (the service, `outbox-relay`s): only the
//! table knows the totals. It runs whether or not this process relays.
//!
//! `SENT` rows are not counted. Housekeeping keeps them for a week
//! (`OUTBOX_RETENTION_HOURS`), millions of them under load, and counting them every 5 s
//! would read them all each time. The sample reads only unsent rows, through the
//! `outbox_unsent_idx` partial index; what was sent is `relay_published_total`.

use std::time::Duration;

use lifecycle::Shutdown;
use metrics::Gauge;
use sqlx::PgPool;
use telemetry::Metrics;
use telemetry::metrics::names;

const STATES: [&str; 3] = ["PENDING", "SENDING", "FAILED"];

/// The counts per unsent state: only `outbox_unsent_idx` is read, never the `SENT` rows
/// (`tests/outbox_age.rs` checks the plan).
pub const COUNT_UNSENT_SQL: &str =
    "SELECT state, count(*) FROM outbox WHERE state <> 'SENT' GROUP BY state";

/// How often [`OutboxGauges::run`] samples: often enough for an alert on the oldest
/// unsent row to fire within seconds, rarely enough to cost nothing.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// The outbox gauges of one service's registry.
#[derive(Clone)]
pub struct OutboxGauges {
    rows: [(&'static str, Gauge); 3],
    oldest_unsent_age: Gauge,
}

impl std::fmt::Debug for OutboxGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxGauges").finish_non_exhaustive()
    }
}

impl OutboxGauges {
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            rows: STATES.map(|state| {
                (
                    state,
                    metrics.gauge(names::OUTBOX_ROWS, &[("state", state)]),
                )
            }),
            oldest_unsent_age: metrics.gauge(names::OUTBOX_OLDEST_UNSENT_AGE_SECONDS, &[]),
        }
    }

    /// One sample: two short queries, both on unsent rows only (`outbox_unsent_idx`).
    pub async fn sample_once(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let counts: Vec<(String, i64)> = sqlx::query_as(COUNT_UNSENT_SQL).fetch_all(pool).await?;
        for (state, gauge) in &self.rows {
            let rows = counts.iter().find(|c| c.0 == *state).map_or(0, |c| c.1);
            gauge.set(rows as f64);
        }
        let age = sqlx::query_scalar!(
            r#"SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS "age!"
                 FROM outbox WHERE state <> 'SENT'"#
        )
        .fetch_one(pool)
        .await?;
        self.oldest_unsent_age.set(age.max(0.0));
        Ok(())
    }

    /// Samples every [`SAMPLE_INTERVAL`] until shutdown; a failed sample keeps the last
    /// values and tries again at the next tick.
    pub async fn run(self, pool: PgPool, shutdown: Shutdown) {
        lifecycle::every(SAMPLE_INTERVAL, &shutdown, || async {
            if let Err(error) = self.sample_once(&pool).await {
                tracing::debug!(%error, "outbox gauge sample failed");
            }
        })
        .await;
    }
}
