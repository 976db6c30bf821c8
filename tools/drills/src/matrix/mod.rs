//! The failure matrix (docs/en/09-failure-matrix.md): each drill starts the real
//! services as processes on a fresh world of their own (databases, topics, groups),
//! drives a bounded load of orders over HTTP, injects one fault — a named crash point
//! (`CRASH_AT`), a service stopped or started mid-stream, a dependency cut — lets the
//! system recover, and then asks the reconciliation checker (`tools/reconcile`) what
//! was lost and what was applied twice.
//!
//! The same drill runs with the safe configuration and, where one exists, with an
//! unsafe teaching toggle, so the matrix shows what each defence buys. Each drill
//! returns one [`Row`]; [`catalogue`] lists them all. Crash point names are those of
//! docs/en/01-overview.md.

pub(crate) mod broker;
pub mod catalogue;
mod crash;
mod lost_ack;
mod membership;
// pub: tools/control-room calls the drills' fault code (cut proxy, copies, poison).
pub mod outages;
pub mod poison;
pub mod table;

pub use broker::{broker_down, broker_down_longer_than_give_up};
pub use crash::{Target, crash_point};
pub use lost_ack::lost_ack;
pub use membership::rebalance;
pub use outages::{payment_database_down, payment_provider_failing, redis_down};
pub use poison::poison_messages;
pub use table::{Row, markdown, plain, summary};

use std::time::Duration;

/// Orders per drill: enough to cross partitions and batches, few enough to settle in
/// seconds.
pub const ORDERS: usize = 30;

/// How long a client keeps retrying one order while a crashed service restarts.
pub const CLIENT_PATIENCE: Duration = Duration::from_secs(120);

/// Waiting for the system to settle stops once nothing has moved for this long.
pub const QUIET: Duration = Duration::from_secs(20);

use crate::load::{ClientRetry, LoadResult, place_orders_paced};
use crate::process::ServiceProcess;
use crate::settle::{PaymentStats, settle};
use crate::{DrillEnv, DrillError};

/// The client's load, running in the background while the drill injects its fault.
type Load = tokio::task::JoinHandle<Result<LoadResult, DrillError>>;

/// Both services serving on `env`, returned as `(order, payment)`; payment-service
/// first, so the first events find their consumer.
async fn start_both(env: &DrillEnv) -> Result<(ServiceProcess, ServiceProcess), DrillError> {
    let mut payment = ServiceProcess::spawn("payment-service", &env.payment_service_env(), None)?;
    payment.wait_serving().await?;
    let mut order = ServiceProcess::spawn("order-service", &env.order_service_env(), None)?;
    order.wait_serving().await?;
    Ok((order, payment))
}

/// `count` orders to `order`, a pause of `pace` between them, each retried with its key.
fn spawn_load(order: &ServiceProcess, count: usize, pace: Duration) -> Load {
    let base = order.base_url.clone();
    tokio::spawn(async move {
        place_orders_paced(&base, count, ClientRetry::SameKey, CLIENT_PATIENCE, pace).await
    })
}

/// The end of every drill: the client is done, the system settles, the checker counts,
/// payment-service's counters are read, and both services stop.
async fn finish(
    env: &DrillEnv,
    load: Load,
    order: ServiceProcess,
    payment: ServiceProcess,
) -> Result<(LoadResult, reconcile::Report, PaymentStats), DrillError> {
    let client = load.await.map_err(DrillError::unexpected)??;
    settle(env, QUIET).await?;
    // "Nothing moved for QUIET" is not "nothing left": a message between two retries
    // can wait longer than that (the backoff reaches 30 s, ±50 %). While payment-service
    // still has a message in hand, wait for it, then settle again.
    if crate::settle::wait_nothing_in_hand(&payment.base_url, Duration::from_secs(120)).await {
        settle(env, QUIET).await?;
    }
    let report = env.reconcile().await?;
    let stats = crate::settle::payment_stats(&payment.base_url).await;
    order.stop().await;
    payment.stop().await;
    Ok((client, report, stats))
}

/// The row of a safe drill whose note is just the client's count and the checker's
/// summary: what [`finish`] returned, under the drill's name.
fn safe_row(
    drill: &'static str,
    (client, report, stats): (LoadResult, reconcile::Report, PaymentStats),
) -> Row {
    let mut row = Row::new(drill, "safe", report);
    row.payment_stats = stats;
    row.note = format!(
        "client: {} placed; {}",
        client.placed,
        crate::matrix::table::summary(&row.report)
    );
    row
}
