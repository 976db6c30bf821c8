//! The reconciliation verdict, computed by `tools/reconcile` — the code of
//! `make reconcile`, not a copy in JavaScript. It reads the whole order topic, so it runs
//! every few seconds (at least twice as long apart as one run takes), not every second.
//!
//! While orders flow, an accepted order without a payment is usually just in flight. It
//! counts as **lost** only once it has stayed unapplied for the settle time, counted from
//! when it was accepted or from the last fault or heal, whichever is later: after
//! "start payment-service" the backlog gets its settle time to drain before anything is
//! called lost.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use uuid::Uuid;

use crate::Shared;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    pub checked_at_ms: i64,
    pub took_ms: u64,
    pub report: Option<reconcile::Report>,
    /// Unapplied orders younger than the settle time.
    pub in_flight: u64,
    /// Unapplied orders older than the settle time: lost.
    pub lost: u64,
    pub settle_secs: u64,
    /// Why the last run failed (a broker down, a database cut), if it did.
    pub error: Option<String>,
}

#[derive(Debug, Default)]
pub struct Latest(Mutex<Verdict>);

impl Latest {
    pub fn get(&self) -> Verdict {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

pub fn settle_time() -> Duration {
    Duration::from_secs(
        std::env::var("CONTROL_ROOM_SETTLE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    )
}

pub async fn run(shared: Arc<Shared>) {
    let settle = settle_time();
    let t = &shared.targets;
    let sources = reconcile::Sources {
        orders_db: t.orders_db.clone(),
        payments_db: t.payments_db.clone(),
        kafka_bootstrap_servers: t.kafka.clone(),
        order_events_topic: t.order_topic.clone(),
        payment_consumer_group: t.payment_group.clone(),
    };
    loop {
        let started = Instant::now();
        let result = tokio::time::timeout(
            Duration::from_secs(30),
            reconcile::reconcile_detailed(&sources),
        )
        .await;
        let took = started.elapsed();
        let mut verdict = shared.verdict.get();
        verdict.settle_secs = settle.as_secs();
        match result {
            Ok(Ok((report, unapplied))) => {
                let last_mark = shared.marks.last_at();
                let lost = settled_unapplied(&t.orders_db, &unapplied, last_mark, settle)
                    .await
                    .unwrap_or(0);
                verdict.in_flight = (unapplied.len() as u64).saturating_sub(lost);
                verdict.lost = lost;
                verdict.report = Some(report);
                verdict.error = None;
                verdict.checked_at_ms = chrono::Utc::now().timestamp_millis();
                verdict.took_ms = took.as_millis() as u64;
            }
            // The last good verdict stays on the page, marked stale by its time.
            Ok(Err(e)) => verdict.error = Some(e.to_string()),
            Err(_) => verdict.error = Some("the reconciliation took longer than 30 s".into()),
        }
        if let Ok(mut v) = shared.verdict.0.lock() {
            *v = verdict;
        }
        tokio::time::sleep((took * 2).max(Duration::from_secs(3))).await;
    }
}

/// How many of `unapplied` were accepted longer than `settle` ago, counting from the last
/// fault or heal if that came later.
async fn settled_unapplied(
    orders: &sqlx::PgPool,
    unapplied: &[Uuid],
    last_mark: Option<chrono::DateTime<chrono::Utc>>,
    settle: Duration,
) -> Result<u64, sqlx::Error> {
    if unapplied.is_empty() {
        return Ok(0);
    }
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders
         WHERE id = ANY($1)
           AND greatest(created_at, coalesce($2, created_at)) < now() - make_interval(secs => $3)",
    )
    .bind(unapplied)
    .bind(last_mark)
    .bind(settle.as_secs_f64())
    .fetch_one(orders)
    .await?;
    Ok(n.unsigned_abs())
}
