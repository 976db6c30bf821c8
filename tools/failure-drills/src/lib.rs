//! The failure matrix (docs/en/09-failure-matrix.md): each drill starts the real
//! services as processes on a fresh world of their own (databases, topics, groups),
//! drives a bounded load of orders over HTTP, injects one fault — a named crash point
//! (`CRASH_AT`), a service stopped or started mid-stream, a dependency cut — lets the
//! system recover, and then asks the reconciliation checker (`tools/reconcile`) what
//! was lost and what was applied twice.
//!
//! The same drill runs with the safe configuration and, where one exists, with an
//! unsafe teaching toggle, so the matrix shows what each defence buys.

pub mod catalogue;
pub mod drills;
pub mod environment;
pub mod key_order;
pub mod load;
pub mod matrix;
pub mod process;
pub mod proxy;
pub mod scale_out;
pub mod soak;

use std::time::Duration;

pub use environment::DrillEnv;
pub use matrix::Row;

#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("setting up the drill: {0}")]
    Setup(String),
    #[error("the drill did not go as planned: {0}")]
    Unexpected(String),
}

/// The 1, 5 and 15 minute load averages, "a b c": printed with every stamp, since
/// figures from a busy machine are lower bounds.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits until every accepted order is settled and paid, or until nothing has moved for
/// `quiet` (a lost message never arrives: waiting longer would not change the count).
pub async fn settle(env: &DrillEnv, quiet: Duration) -> Result<(), DrillError> {
    let orders = env.orders_pool().await;
    let payments = env.payments_pool().await;
    let mut last = (-1, -1, -1);
    let mut since = tokio::time::Instant::now();
    loop {
        let accepted: i64 = scalar(&orders, "SELECT count(*) FROM orders").await;
        let settled: i64 = scalar(
            &orders,
            "SELECT count(*) FROM orders WHERE status <> 'PENDING_PAYMENT'",
        )
        .await;
        let paid: i64 = scalar(&payments, "SELECT count(*) FROM payments").await;
        if accepted > 0 && settled == accepted && paid >= accepted {
            return Ok(());
        }
        let now = (accepted, settled, paid);
        if now != last {
            last = now;
            since = tokio::time::Instant::now();
        } else if since.elapsed() > quiet {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A count, or -1 while the table does not exist yet (the service has not migrated).
async fn scalar(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or(-1)
}

/// Waits (at most `within`) until payment-service's consumer has every message it
/// received finished (applied, suppressed or dead-lettered); returns whether it had to
/// wait at all.
pub async fn wait_nothing_in_hand(payment_base_url: &str, within: Duration) -> bool {
    let in_hand = || async {
        let stats: serde_json::Value = match reqwest::get(format!("{payment_base_url}/stats")).await
        {
            Ok(answer) => answer.json().await.unwrap_or_default(),
            Err(_) => return 0,
        };
        let n = |k: &str| stats[k].as_u64().unwrap_or(0);
        let finished = n("applied")
            + n("duplicates_redis")
            + n("duplicates_inbox")
            + n("duplicates_business_key")
            + n("dead_lettered");
        n("consumed").saturating_sub(finished)
    };
    let deadline = tokio::time::Instant::now() + within;
    let mut waited = false;
    while in_hand().await > 0 && tokio::time::Instant::now() < deadline {
        waited = true;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    waited
}

/// What payment-service's `GET /stats` counted: duplicates suppressed by the layers
/// that are not the inbox (the checker reads the inbox itself), and transient failures
/// retried. Counters of the running process: read them from the last one, before
/// stopping it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PaymentStats {
    pub suppressed_redis: u64,
    pub suppressed_business_key: u64,
    pub retried: u64,
}

pub async fn payment_stats(payment_base_url: &str) -> PaymentStats {
    let stats: serde_json::Value = match reqwest::get(format!("{payment_base_url}/stats")).await {
        Ok(answer) => answer.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    };
    let n = |k: &str| stats[k].as_u64().unwrap_or(0);
    PaymentStats {
        suppressed_redis: n("duplicates_redis"),
        suppressed_business_key: n("duplicates_business_key"),
        retried: n("retried"),
    }
}
