//! The bounded load: orders placed over HTTP, each with its own `Idempotency-Key`, and
//! retried with that key when an answer does not come (a crash, a refused connection)
//! — what a careful client does.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::DrillError;

/// How the client retries an order whose answer it did not get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRetry {
    /// The same `Idempotency-Key` on every attempt (safe).
    SameKey,
    /// No key at all: each attempt is a new request (the unsafe toggle).
    WithoutKey,
}

/// What the client saw.
#[derive(Debug, Default, Clone)]
pub struct LoadResult {
    /// Orders the client considers placed (an answer 201 or 503-stored came back).
    pub placed: u64,
    /// Attempts that got no answer or a 5xx, and were sent again.
    pub retried: u64,
    /// 503 answers (direct mode with the broker down: failed fast).
    pub refused: u64,
}

/// The `i`-th order of a drill. Minor units never ending in 13: the simulated provider
/// approves them all.
pub fn order_body(i: usize) -> serde_json::Value {
    json!({"customer_id": format!("drill-{i}"), "amount_minor": 1000 + (i as i64 % 7) * 100, "currency": "EUR"})
}

/// Places `count` orders at `base_url`, one at a time; a missing answer is retried (up
/// to `max_wait`, e.g. while a crashed service restarts on the same port).
pub async fn place_orders(
    base_url: &str,
    count: usize,
    retry: ClientRetry,
    max_wait: Duration,
) -> Result<LoadResult, DrillError> {
    place_orders_paced(base_url, count, retry, max_wait, Duration::ZERO).await
}

/// The same, with a pause of `pace` between orders, so a fault lands mid-stream.
pub async fn place_orders_paced(
    base_url: &str,
    count: usize,
    retry: ClientRetry,
    max_wait: Duration,
    pace: Duration,
) -> Result<LoadResult, DrillError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(DrillError::setup)?;
    let mut result = LoadResult::default();
    for i in 0..count {
        tokio::time::sleep(pace).await;
        let key = Uuid::now_v7().to_string();
        let body = order_body(i);
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let mut request = http.post(format!("{base_url}/orders")).json(&body);
            if retry == ClientRetry::SameKey {
                request = request.header("Idempotency-Key", &key);
            }
            match request.send().await {
                Ok(answer) if answer.status().as_u16() == 201 => {
                    result.placed += 1;
                    break;
                }
                Ok(answer) if answer.status().as_u16() == 503 => {
                    // Direct mode, broker down: refused fast, but the order IS stored
                    // and its event is in the send log (services/order-service/src/api).
                    result.refused += 1;
                    result.placed += 1;
                    break;
                }
                Ok(answer) if answer.status().is_client_error() => {
                    return Err(DrillError::Unexpected(format!(
                        "order {i}: {}",
                        answer.text().await.unwrap_or_default()
                    )));
                }
                _ if tokio::time::Instant::now() < deadline => {
                    result.retried += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => {
                    return Err(DrillError::Unexpected(format!(
                        "order {i}: no answer within {max_wait:?}: {other:?}"
                    )));
                }
            }
        }
    }
    Ok(result)
}
