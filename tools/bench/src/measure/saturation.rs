//! Saturation rates, found by a bounded bisection over fixed arrival rates.
//!
//! A closed loop says how fast a service answers when it is kept busy; it does not say
//! whether the chain behind it keeps up. The chain's **saturation rate** is the
//! highest fixed arrival rate of `POST /orders` at which, during a step of
//! `BENCH_SATURATION_STEP_SECONDS`:
//!
//! - the achieved rate (orders created / seconds from the first send to the last
//!   answer) is at least 95 % of the offered rate, with no failed request, and
//! - every created order settles (`PAID` or `PAYMENT_FAILED`, the whole round trip:
//!   relay → consumer → outcome relay → order-service's consumer) within
//!   `BENCH_SETTLE_SECONDS` after the last answer.
//!
//! Beside it, the API's own saturation: order-service alone, its relay on as deployed
//! (the relay takes its share of the cores), the same search with the first criterion
//! only. Both searches run the services as deployed (defaults, release build).
//!
//! Where the time goes at the first rate that fails is measured, not guessed: at the
//! moment the step's last answer arrives, how many of its orders are still in each
//! stage (created, not relayed / relayed, not applied / applied, not settled), and the
//! CPU each part of the machine used during the step.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;
use sqlx::PgPool;

use crate::cpu::{CpuUse, CpuWindow};
use crate::http_load::{self, FixedRate};
use crate::services::{Chain, start_chain};
use crate::{Settings, progress, stack};

/// Achieved / offered at least this for a step to pass.
pub const ACHIEVED_TARGET: f64 = 0.95;
/// Requests waiting at once before the generator drops sends.
const MAX_IN_FLIGHT: usize = 1024;
/// Steps of one search at most: with the default upper end (3000/s) the bisection
/// ends within about 25 orders/s of the true rate.
const MAX_STEPS: usize = 7;
/// A search stops once its bracket is this narrow relative to its lower end.
const RESOLUTION: f64 = 0.05;
/// After a failed step, how long the bench waits for its backlog to drain before the
/// next step (a backlog left behind would be measured as the next step's latency).
const DRAIN_BOUND: Duration = Duration::from_secs(120);

/// Where a step's orders were when its last answer arrived.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Backlog {
    /// Created, `OrderCreated` not yet acked and marked by order-service's relay.
    pub not_relayed: usize,
    /// Relayed, not yet applied by payment-service.
    pub not_applied: usize,
    /// Applied, the order not yet `PAID`/`PAYMENT_FAILED` (outcome relay + consumer).
    pub not_settled: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub offered: u32,
    pub achieved: f64,
    pub created: usize,
    pub failed: usize,
    pub dropped: u64,
    /// Chain only: orders still unsettled when the settle bound ended.
    pub unsettled: usize,
    /// Chain only: from the last answer until every order settled, ms (`None`: not
    /// within the bound).
    pub settled_after_ms: Option<f64>,
    /// Chain only: where the orders were at the last answer.
    pub backlog_at_stop: Backlog,
    pub cpu: CpuUse,
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Search {
    /// In the order they ran.
    pub steps: Vec<Step>,
    /// The highest offered rate that passed (0 when none did).
    pub saturation: u32,
    /// True when the search's upper end passed: the rate is at least `saturation`.
    pub at_upper_end: bool,
}

impl Search {
    /// The lowest offered rate that failed: the step that shows where the time goes.
    pub fn first_failing(&self) -> Option<&Step> {
        self.steps
            .iter()
            .filter(|s| !s.passed)
            .min_by_key(|s| s.offered)
    }

    /// The step at the saturation rate.
    pub fn at_saturation(&self) -> Option<&Step> {
        self.steps
            .iter()
            .find(|s| s.passed && s.offered == self.saturation)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SaturationResult {
    pub step_seconds: u64,
    pub settle_seconds: u64,
    pub upper_end: u32,
    pub chain: Search,
    pub api: Search,
    /// `chain.saturation / api.saturation` (target ≥ 0.70).
    pub ratio: f64,
}

/// The next rate to try, or `None` when the bracket `(passed, failed)` is narrow
/// enough. `failed` is `None` while nothing has failed yet (the upper end is next).
pub fn next_rate(passed: u32, failed: Option<u32>, upper_end: u32) -> Option<u32> {
    let Some(failed) = failed else {
        return (passed < upper_end).then_some(if passed == 0 {
            upper_end / 2
        } else {
            upper_end
        });
    };
    let width = f64::from(failed.saturating_sub(passed));
    if width <= (f64::from(passed) * RESOLUTION).max(10.0) {
        return None;
    }
    Some(passed + failed.saturating_sub(passed) / 2)
}

pub async fn measure(settings: &Settings) -> anyhow::Result<SaturationResult> {
    let api = search(settings, false).await?;
    let chain = search(settings, true).await?;
    Ok(SaturationResult {
        step_seconds: settings.saturation_step_seconds,
        settle_seconds: settings.settle_seconds,
        upper_end: settings.saturation_max,
        ratio: f64::from(chain.saturation) / f64::from(api.saturation.max(1)),
        chain,
        api,
    })
}

/// One search on services of its own: `chain` runs both services and judges settling;
/// otherwise order-service runs alone (relay on) and only the achieved rate counts.
async fn search(settings: &Settings, chain: bool) -> anyhow::Result<Search> {
    let what = if chain { "chain" } else { "api" };
    let tag = format!("saturation_{what}");
    progress(&format!("saturation ({what}): starting the services"));
    let Chain {
        order,
        payment,
        orders_url,
        payments_url,
    } = start_chain(settings, &tag, chain, &[]).await?;
    let orders_db = stack::pool(&orders_url, 2).await?;
    let payments_db = stack::pool(&payments_url, 2).await?;
    let client = http_load::client();
    let mut pids = vec![("order-service", order.pid())];
    if let Some(p) = &payment {
        pids.push(("payment-service", p.pid()));
    }

    let (mut passed, mut failed): (u32, Option<u32>) = (0, None);
    let mut steps = Vec::new();
    let mut first_index = 0;
    while steps.len() < MAX_STEPS {
        let Some(rate) = next_rate(passed, failed, settings.saturation_max) else {
            break;
        };
        progress(&format!(
            "saturation ({what}): {rate} orders/s for {}s",
            settings.saturation_step_seconds
        ));
        let cpu = CpuWindow::start(&pids);
        let started = Instant::now();
        let run = http_load::fixed_rate(
            &client,
            &order.base_url(),
            rate,
            Duration::from_secs(settings.saturation_step_seconds),
            MAX_IN_FLIGHT,
            first_index,
        )
        .await;
        let wall = started.elapsed().as_secs_f64();
        let cpu = cpu.finish();
        first_index += run.samples.len() as u64 + run.dropped;
        let step = judge(
            settings,
            chain,
            rate,
            &run,
            wall,
            cpu,
            &orders_db,
            &payments_db,
        )
        .await?;
        progress(&format!(
            "saturation ({what}): {rate}/s → achieved {:.0}/s, {} failed, {} dropped{}: {}",
            step.achieved,
            step.failed,
            step.dropped,
            if chain {
                format!(
                    ", settled {}",
                    step.settled_after_ms.map_or_else(
                        || format!("NOT within {} s", settings.settle_seconds),
                        |ms| format!("{ms:.0} ms after the load")
                    )
                )
            } else {
                String::new()
            },
            if step.passed { "pass" } else { "FAIL" }
        ));
        if step.passed {
            passed = rate;
        } else {
            failed = Some(rate);
            drain_backlog(chain, &orders_db).await?;
        }
        steps.push(step);
    }
    orders_db.close().await;
    payments_db.close().await;
    order.stop().await?;
    if let Some(p) = payment {
        p.stop().await?;
    }
    Ok(Search {
        steps,
        saturation: passed,
        at_upper_end: passed >= settings.saturation_max,
    })
}

#[allow(clippy::too_many_arguments)] // one step's inputs, each needed once
async fn judge(
    settings: &Settings,
    chain: bool,
    rate: u32,
    run: &FixedRate,
    wall_seconds: f64,
    cpu: CpuUse,
    orders_db: &PgPool,
    payments_db: &PgPool,
) -> anyhow::Result<Step> {
    let ids: Vec<uuid::Uuid> = run.created().filter_map(|s| s.order_id).collect();
    let created = ids.len();
    let failed = run.samples.len() - created;
    // Seconds from the first send to the last answer: a service that falls behind
    // answers late, and its achieved rate shows it.
    let achieved = created as f64 / wall_seconds.max(f64::EPSILON);
    let rate_ok = achieved >= ACHIEVED_TARGET * f64::from(rate) && failed == 0;
    let mut step = Step {
        offered: rate,
        achieved,
        created,
        failed,
        dropped: run.dropped,
        unsettled: 0,
        settled_after_ms: None,
        backlog_at_stop: Backlog::default(),
        cpu,
        passed: rate_ok,
    };
    if !chain {
        return Ok(step);
    }
    let stopped = Instant::now();
    step.backlog_at_stop = backlog(&ids, orders_db, payments_db).await?;
    let deadline = stopped + Duration::from_secs(settings.settle_seconds);
    loop {
        let settled = settled_count(&ids, orders_db).await?;
        if settled >= created {
            step.settled_after_ms = Some(stopped.elapsed().as_secs_f64() * 1e3);
            break;
        }
        if Instant::now() > deadline {
            step.unsettled = created - settled;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    step.passed = rate_ok && step.settled_after_ms.is_some();
    Ok(step)
}

async fn settled_count(ids: &[uuid::Uuid], orders_db: &PgPool) -> anyhow::Result<usize> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE id = ANY($1) AND status IN ('PAID', 'PAYMENT_FAILED')",
    )
    .bind(ids)
    .fetch_one(orders_db)
    .await?;
    Ok(n as usize)
}

/// How many of `ids` are in each stage now (three reads, milliseconds apart).
async fn backlog(
    ids: &[uuid::Uuid],
    orders_db: &PgPool,
    payments_db: &PgPool,
) -> anyhow::Result<Backlog> {
    let keys: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let relayed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE message_key = ANY($1) AND state = 'SENT'",
    )
    .bind(&keys)
    .fetch_one(orders_db)
    .await?;
    // The payment's outcome row: written last in the payment's transaction.
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE message_key = ANY($1)")
            .bind(&keys)
            .fetch_one(payments_db)
            .await?;
    let settled = settled_count(ids, orders_db).await? as i64;
    let created = ids.len() as i64;
    let non_negative = |n: i64| n.max(0) as usize;
    Ok(Backlog {
        not_relayed: non_negative(created - relayed),
        not_applied: non_negative(relayed - applied),
        not_settled: non_negative(applied - settled),
    })
}

/// Waits (bounded) until no order is left in flight: every order settled (chain) or
/// every `OrderCreated` relayed (API alone), so the next step starts empty.
async fn drain_backlog(chain: bool, orders_db: &PgPool) -> anyhow::Result<()> {
    let query = if chain {
        "SELECT count(*) FROM orders WHERE status = 'PENDING_PAYMENT'"
    } else {
        "SELECT count(*) FROM outbox WHERE state <> 'SENT'"
    };
    let deadline = Instant::now() + DRAIN_BOUND;
    loop {
        let left: i64 = sqlx::query_scalar(query).fetch_one(orders_db).await?;
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{left} orders still in flight {} s after a failed step",
                DRAIN_BOUND.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against a service whose true saturation is `truth`.
    fn search_against(truth: u32, upper_end: u32) -> (u32, Vec<u32>) {
        let (mut passed, mut failed) = (0, None);
        let mut tried = Vec::new();
        while tried.len() < MAX_STEPS {
            let Some(rate) = next_rate(passed, failed, upper_end) else {
                break;
            };
            tried.push(rate);
            if rate <= truth {
                passed = rate;
            } else {
                failed = Some(rate);
            }
        }
        (passed, tried)
    }

    #[test]
    fn the_bisection_ends_close_below_the_true_rate_in_bounded_steps() {
        for truth in [90, 700, 1_234, 2_100] {
            let (found, tried) = search_against(truth, 3_000);
            assert!(found <= truth, "{truth}: {found} above the truth");
            assert!(
                f64::from(truth - found) <= 3_000.0 / 2f64.powi(MAX_STEPS as i32 - 1),
                "{truth}: found {found} after {tried:?}"
            );
            assert!(tried.len() <= MAX_STEPS);
        }
    }

    #[test]
    fn a_service_faster_than_the_upper_end_is_reported_at_it() {
        let (found, tried) = search_against(10_000, 3_000);
        assert_eq!((found, tried), (3_000, vec![1_500, 3_000]));
    }

    #[test]
    fn a_narrow_bracket_ends_the_search() {
        assert_eq!(next_rate(1_000, Some(1_040), 3_000), None);
        assert_eq!(next_rate(1_000, Some(1_200), 3_000), Some(1_100));
    }
}
