//! A dependency goes away for a while under load: the payment database (retries,
//! no offset stored, no loss), Redis (the fast path is off, the inbox still decides),
//! the payment provider (an external call retried with its idempotency key).

use std::time::Duration;

use crate::process::ServiceProcess;
use crate::proxy::CuttableProxy;
use crate::{DrillEnv, DrillError, Row};

use super::{ORDERS, finish, safe_row, spawn_load, start_both};

/// The payment database unreachable for 8 s in the middle of the stream.
pub async fn payment_database_down() -> Result<Row, DrillError> {
    let mut env = DrillEnv::create(None).await?;
    let proxy = payment_database_behind_proxy(&mut env).await?;
    let (order, payment) = start_both(&env).await?;
    let load = spawn_load(&order, ORDERS, Duration::ZERO);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cut_for(&proxy, Duration::from_secs(8)).await;
    let finished = finish(&env, load, order, payment).await?;
    Ok(safe_row("payment database down for 8 s", finished))
}

/// payment-service's `DATABASE_URL` through a proxy the drill can cut (set before the
/// service starts); the database itself keeps running for everyone else.
/// pub: tools/control-room's "cut the payment database" uses the same proxy.
pub async fn payment_database_behind_proxy(
    env: &mut DrillEnv,
) -> Result<CuttableProxy, DrillError> {
    let proxy = CuttableProxy::start(env.postgres_address()).await?;
    let via_proxy = env.payments_database_url_via(&proxy.listen);
    env.payment_vars.insert("DATABASE_URL".into(), via_proxy);
    Ok(proxy)
}

/// The cut: every connection dropped and refused for `outage`, then restored.
pub(crate) async fn cut_for(proxy: &CuttableProxy, outage: Duration) {
    proxy.cut();
    tokio::time::sleep(outage).await;
    proxy.restore();
}

/// Redis unreachable for the whole stream, and the consumer crashing after a commit
/// (C2) on top: the redelivered copy must be caught without the fast path.
pub async fn redis_down() -> Result<Row, DrillError> {
    let mut env = DrillEnv::create(None).await?;
    let proxy = CuttableProxy::start(env.redis_address()).await?;
    proxy.cut();
    env.payment_vars
        .insert("REDIS_URL".into(), format!("redis://{}", proxy.listen));
    let port = test_support::unused_port();
    let mut payment = ServiceProcess::spawn_on(
        port,
        "payment-service",
        &env.payment_service_env(),
        Some("C2"),
    )?;
    payment.wait_serving().await?;
    let mut order = ServiceProcess::spawn("order-service", &env.order_service_env(), None)?;
    order.wait_serving().await?;
    let load = spawn_load(&order, ORDERS, Duration::ZERO);
    payment.wait_crashed(Duration::from_secs(90)).await?;
    let mut payment =
        ServiceProcess::spawn_on(port, "payment-service", &env.payment_service_env(), None)?;
    payment.wait_serving().await?;
    let finished = finish(&env, load, order, payment).await?;
    Ok(safe_row("Redis down (and a C2 crash)", finished))
}

/// Half of the provider's calls fail ("unavailable"); the consumer retries with
/// backoff, and the provider's idempotency key keeps the charges at one per order.
pub async fn payment_provider_failing() -> Result<Row, DrillError> {
    let mut env = DrillEnv::create(None).await?;
    env.payment_vars
        .insert("PROVIDER_FAILURE_RATE".into(), "0.5".into());
    let (order, payment) = start_both(&env).await?;
    let load = spawn_load(&order, ORDERS, Duration::ZERO);
    let (client, report, stats) = finish(&env, load, order, payment).await?;
    let client = client.placed;
    let pool = env.payments_pool().await;
    let (charges, calls): (i64, Option<i64>) =
        sqlx::query_as("SELECT count(*), sum(calls)::bigint FROM provider_charges")
            .fetch_one(&pool)
            .await
            .map_err(DrillError::unexpected)?;
    let mut row = Row::new("payment provider failing half its calls", "safe", report);
    row.payment_stats = stats;
    row.note = format!(
        "client: {client} placed; consumer retries: {}; provider: {charges} charges for {} successful calls; {}",
        row.payment_stats.retried,
        calls.unwrap_or(0),
        crate::matrix::table::summary(&row.report)
    );
    Ok(row)
}
