//! The load generator for `POST /orders`: a closed loop (N clients, each sends its next
//! order when the last one is answered — how the throughput ceiling is found) and a
//! fixed rate (an order every 1/rate s whatever the answers do — how latency at a given
//! rate is found, without the coordinated omission of a closed loop).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use uuid::Uuid;

/// One answered request.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The created order (a `201` with an id in its body), `None` for a failure.
    pub order_id: Option<Uuid>,
    /// When the client had the `201`: "order accepted" of the end-to-end latency.
    pub accepted_at: DateTime<Utc>,
    pub latency: Duration,
}

/// A valid order; amounts never end in 13, so every payment succeeds.
pub fn order_body(i: u64) -> Vec<u8> {
    let mut amount = 1_000 + (i % 9_000);
    if amount % 100 == 13 {
        amount += 1;
    }
    format!(
        r#"{{"customer_id":"bench-{}","amount_minor":{amount},"currency":"EUR"}}"#,
        i % 1_000
    )
    .into_bytes()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

async fn post_order(client: &reqwest::Client, url: &str, i: u64) -> Sample {
    let started = Instant::now();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(order_body(i))
        .send()
        .await;
    let order_id = match response {
        Ok(r) if r.status() == reqwest::StatusCode::CREATED => r
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v.get("id")?.as_str().and_then(|s| Uuid::parse_str(s).ok())),
        _ => None,
    };
    Sample {
        order_id,
        accepted_at: DateTime::<Utc>::from(SystemTime::now()),
        latency: started.elapsed(),
    }
}

/// What a closed loop measured inside its window.
#[derive(Debug, Clone, Default)]
pub struct ClosedLoop {
    pub created: u64,
    pub failed: u64,
    pub seconds: f64,
    /// Latencies of the created orders, ms.
    pub latencies_ms: Vec<f64>,
}

impl ClosedLoop {
    pub fn per_second(&self) -> f64 {
        self.created as f64 / self.seconds.max(f64::EPSILON)
    }
}

/// `clients` loops of request-after-answer: `warmup` first (not counted), then `window`.
/// Only requests sent and answered inside the window count.
pub async fn closed_loop(
    client: &reqwest::Client,
    base_url: &str,
    clients: usize,
    warmup: Duration,
    window: Duration,
) -> ClosedLoop {
    let url = format!("{base_url}/orders");
    let start = Instant::now() + warmup;
    let end = start + window;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            let mut mine = ClosedLoop::default();
            let mut i = c as u64 * 1_000_000;
            while Instant::now() < end {
                let sent = Instant::now();
                let sample = post_order(&client, &url, i).await;
                i += 1;
                if sent < start || Instant::now() > end {
                    continue;
                }
                match sample.order_id {
                    Some(_) => {
                        mine.created += 1;
                        mine.latencies_ms.push(sample.latency.as_secs_f64() * 1e3);
                    }
                    None => mine.failed += 1,
                }
            }
            mine
        });
    }
    let mut total = ClosedLoop {
        seconds: window.as_secs_f64(),
        ..ClosedLoop::default()
    };
    while let Some(joined) = tasks.join_next().await {
        if let Ok(mine) = joined {
            total.created += mine.created;
            total.failed += mine.failed;
            total.latencies_ms.extend(mine.latencies_ms);
        }
    }
    total
}

/// What a fixed-rate run sent and got back.
#[derive(Debug, Clone, Default)]
pub struct FixedRate {
    pub samples: Vec<Sample>,
    /// Sends skipped because `max_in_flight` requests were already waiting: the
    /// service could not keep up with the rate (k6 calls these dropped iterations).
    pub dropped: u64,
    pub seconds: f64,
}

impl FixedRate {
    pub fn created(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| s.order_id.is_some())
    }
}

/// Sends `rate` orders per second for `duration`, each on its own task, at most
/// `max_in_flight` at once; waits for every answer.
pub async fn fixed_rate(
    client: &reqwest::Client,
    base_url: &str,
    rate: u32,
    duration: Duration,
    max_in_flight: usize,
    first_index: u64,
) -> FixedRate {
    let url = format!("{base_url}/orders");
    let total = (f64::from(rate) * duration.as_secs_f64()).round() as u64;
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    let in_flight = Arc::new(Semaphore::new(max_in_flight));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut dropped = 0;
    for n in 0..total {
        // Each send has its own due time, so a late wake-up sends the overdue ones at
        // once instead of drifting below the rate.
        tokio::time::sleep_until((started + period.mul_f64(n as f64)).into()).await;
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            dropped += 1;
            continue;
        };
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            let sample = post_order(&client, &url, first_index + n).await;
            drop(permit);
            sample
        });
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut samples = Vec::with_capacity(total as usize);
    while let Some(joined) = tasks.join_next().await {
        if let Ok(sample) = joined {
            samples.push(sample);
        }
    }
    FixedRate {
        samples,
        dropped,
        seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_bodies_are_valid_orders_that_the_provider_approves() {
        for i in [0, 13, 113, 8_999, 12_345] {
            let v: serde_json::Value = serde_json::from_slice(&order_body(i)).expect("json");
            let amount = v["amount_minor"].as_i64().expect("amount");
            assert!(amount > 0 && amount % 100 != 13, "{amount}");
            assert_eq!(v["currency"], "EUR");
        }
    }
}
