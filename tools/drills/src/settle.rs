//! Waiting for the chain to come to rest after a fault, and reading what payment-service
//! counted: every drill of the matrix, the scale-out drill and the soak end this way
//! before the reconciliation counts.

use std::time::Duration;

use crate::DrillEnv;
use crate::error::DrillError;

/// Waits until every accepted order is settled and paid, or until nothing has moved for
/// `quiet` (a lost message never arrives: waiting longer would not change the count).
/// The outbox's backlog draining is movement too.
pub async fn settle(env: &DrillEnv, quiet: Duration) -> Result<(), DrillError> {
    let orders = env.orders_pool().await;
    let payments = env.payments_pool().await;
    let mut last = (-1, -1, -1, -1);
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
        let unsent: i64 =
            scalar(&orders, "SELECT count(*) FROM outbox WHERE state <> 'SENT'").await;
        let now = (accepted, settled, paid, unsent);
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
