//! The page's own load: a steady rate of orders over HTTP, bounded in rate and in time,
//! each with its own `Idempotency-Key` (the drills' order bodies). k6 from a terminal
//! needs nothing from here: the counters read the databases, so its orders show too.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;

/// Orders per second at most: the safe cap on this 2-core machine, well below the
/// chain's saturation (docs/en/08-load-and-benchmark.md).
pub const MAX_RATE: u32 = 50;
/// How long one load runs at most.
pub const MAX_SECONDS: u64 = 600;
/// Requests waiting for an answer at most; beyond it a tick is skipped, not queued.
const MAX_IN_FLIGHT: usize = 64;

#[derive(Debug, Default)]
pub struct Generator {
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    state: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    rate: AtomicU64,
    until_ms: AtomicU64,
    sent: AtomicU64,
    created: AtomicU64,
    failed: AtomicU64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadState {
    pub rate: u64,
    pub max_rate: u32,
    pub max_seconds: u64,
    pub remaining_s: u64,
    pub sent: u64,
    pub created: u64,
    /// No answer, or not 201 (order-service down, overloaded).
    pub failed: u64,
}

impl Generator {
    /// Starts (or replaces) a load of `rate` orders/s for `seconds`; rate 0 stops it.
    pub fn set(&self, order_url: &str, rate: u32, seconds: u64) -> Result<(), String> {
        if rate > MAX_RATE {
            return Err(format!(
                "rate {rate}/s is above the safe cap of {MAX_RATE}/s"
            ));
        }
        if seconds == 0 || seconds > MAX_SECONDS {
            return Err(format!("duration must be 1..={MAX_SECONDS} s"));
        }
        self.stop();
        if rate == 0 {
            return Ok(());
        }
        let state = Arc::clone(&self.state);
        let until = chrono::Utc::now().timestamp_millis() as u64 + seconds * 1000;
        state.rate.store(u64::from(rate), Ordering::SeqCst);
        state.until_ms.store(until, Ordering::SeqCst);
        let url = format!("{order_url}/orders");
        let task = tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default();
            let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
            let mut i = 0usize;
            while tokio::time::Instant::now() < deadline {
                tick.tick().await;
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    state.failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                i += 1;
                state.sent.fetch_add(1, Ordering::Relaxed);
                let request = http
                    .post(&url)
                    .header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
                    .json(&drills::load::order_body(i));
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let created = request
                        .send()
                        .await
                        .is_ok_and(|r| r.status().as_u16() == 201);
                    let counter = if created {
                        &state.created
                    } else {
                        &state.failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    drop(permit);
                });
            }
            state.rate.store(0, Ordering::SeqCst);
        });
        if let Ok(mut slot) = self.task.lock() {
            *slot = Some(task);
        }
        Ok(())
    }

    pub fn stop(&self) {
        if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
        self.state.rate.store(0, Ordering::SeqCst);
    }

    pub fn state(&self) -> LoadState {
        let s = &self.state;
        let now = chrono::Utc::now().timestamp_millis() as u64;
        let rate = s.rate.load(Ordering::SeqCst);
        LoadState {
            rate,
            max_rate: MAX_RATE,
            max_seconds: MAX_SECONDS,
            remaining_s: if rate == 0 {
                0
            } else {
                s.until_ms.load(Ordering::SeqCst).saturating_sub(now) / 1000
            },
            sent: s.sent.load(Ordering::Relaxed),
            created: s.created.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
        }
    }
}
