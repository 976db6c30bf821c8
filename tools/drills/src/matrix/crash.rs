//! A service aborts at a named crash point while orders flow, and is restarted on the
//! same port; the client retries what got no answer.

use std::time::Duration;

use crate::load::{ClientRetry, place_orders};
use crate::process::ServiceProcess;
use crate::{DrillEnv, DrillError, Row};

use super::{CLIENT_PATIENCE, ORDERS, finish};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The API and, inside it, the relay (A1, A2, R1, R2, R3).
    OrderService,
    /// The consumer (C1, C2).
    PaymentService,
}

/// Runs `ORDERS` orders through the chain while `target` crashes once at `point`.
/// `order_vars`/`payment_vars` carry the configuration (the safe defaults when empty).
#[allow(clippy::too_many_arguments)]
pub async fn crash_point(
    drill: &'static str,
    configuration: &'static str,
    target: Target,
    point: lifecycle::CrashPoint,
    order_vars: &[(&str, &str)],
    payment_vars: &[(&str, &str)],
    retry: ClientRetry,
) -> Result<Row, DrillError> {
    let mut env = DrillEnv::create(None).await?;
    for (k, v) in order_vars {
        env.order_vars.insert((*k).to_owned(), (*v).to_owned());
    }
    for (k, v) in payment_vars {
        env.payment_vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let order_port = test_support::unused_port();
    let payment_port = test_support::unused_port();
    // The enum, not a free string: a drill can only arm a point the services have.
    let crash = |t: Target| (t == target).then_some(point.name());

    let mut payment = ServiceProcess::spawn_on(
        payment_port,
        "payment-service",
        &env.payment_service_env(),
        crash(Target::PaymentService),
    )?;
    payment.wait_serving().await?;
    let mut order = ServiceProcess::spawn_on(
        order_port,
        "order-service",
        &env.order_service_env(),
        crash(Target::OrderService),
    )?;
    order.wait_serving().await?;

    let base = order.base_url.clone();
    let load =
        tokio::spawn(async move { place_orders(&base, ORDERS, retry, CLIENT_PATIENCE).await });

    // The crash, then the restart (without the crash point) where clients retry.
    let (order, payment) = match target {
        Target::OrderService => {
            order.wait_crashed(Duration::from_secs(90)).await?;
            let mut restarted = ServiceProcess::spawn_on(
                order_port,
                "order-service",
                &env.order_service_env(),
                None,
            )?;
            restarted.wait_serving().await?;
            (restarted, payment)
        }
        Target::PaymentService => {
            payment.wait_crashed(Duration::from_secs(90)).await?;
            let mut restarted = ServiceProcess::spawn_on(
                payment_port,
                "payment-service",
                &env.payment_service_env(),
                None,
            )?;
            restarted.wait_serving().await?;
            (order, restarted)
        }
    };
    let (client, report, stats) = finish(&env, load, order, payment).await?;

    let mut row = Row::new(drill, configuration, report);
    row.payment_stats = stats;
    row.orders_doubled_by_retries = row.report.accepted.saturating_sub(client.placed);
    row.note = format!(
        "client: {} placed, {} retried; {}",
        client.placed,
        client.retried,
        crate::matrix::table::summary(&row.report)
    );
    Ok(row)
}
