//! Rebalance: a second consumer joins the group mid-stream and the first one leaves
//! (SIGTERM, a graceful stop), while orders keep flowing. Partitions move twice; a
//! message in hand or an offset not yet committed at the hand-over is where a loss or
//! a double application would come from.

use std::time::Duration;

use crate::process::ServiceProcess;
use crate::{DrillEnv, DrillError, Row};

use super::{ORDERS, finish, safe_row, spawn_load};

pub async fn rebalance() -> Result<Row, DrillError> {
    let env = DrillEnv::create(None).await?;
    let mut first = ServiceProcess::spawn("payment-service", &env.payment_service_env(), None)?;
    first.wait_serving().await?;
    let mut order = ServiceProcess::spawn("order-service", &env.order_service_env(), None)?;
    order.wait_serving().await?;

    // Three times the usual load, so the stream is still running at both hand-overs.
    let load = spawn_load(&order, 3 * ORDERS, Duration::ZERO);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut second = ServiceProcess::spawn("payment-service", &env.payment_service_env(), None)?;
    second.wait_serving().await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.stop().await;

    let finished = finish(&env, load, order, second).await?;
    Ok(safe_row(
        "rebalance: a consumer joins, another leaves",
        finished,
    ))
}
