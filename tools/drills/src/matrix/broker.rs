//! The whole Kafka cluster unavailable for 15 s while orders keep coming. With the
//! outbox the API keeps accepting (the rows wait, the relay backs off and drains the
//! backlog when the brokers return); in direct mode the API fails fast with 503 — the
//! order is stored and its event re-pushed from the send log. Neither loses anything.
//!
//! The long variant keeps the cluster down for longer than the relay used to wait
//! before it gave a row up (`RELAY_MAX_ATTEMPTS` sends: shortened to 2 for the drill,
//! about 9 s with its 4 s delivery timeout, where the defaults took about 15 minutes).
//! A broker outage is a transient failure: no row may become `FAILED`, and every order
//! accepted during the outage must end paid with no operator.
//!
//! The brokers are stopped for real, so this drill runs on a cluster of its own
//! (`KAFKA_CLUSTER=failure-drills`, ports 9900-9902), never the shared one.

use std::time::Duration;

use crate::cluster::DrillCluster;

use crate::{DrillEnv, DrillError, Row};

use super::{ORDERS, finish, spawn_load, start_both};

const PORT_BASE: u16 = 9900;
const OUTAGE: Duration = Duration::from_secs(15);

async fn cluster(args: &'static [&'static str], c: &DrillCluster) -> Result<(), DrillError> {
    // `kafka.sh` blocks until the nodes are up or down; keep it off the runtime's threads.
    tokio::task::block_in_place(|| c.run(args))
}

pub async fn broker_down(configuration: &'static str, direct: bool) -> Result<Row, DrillError> {
    let extra: &[(&str, &str)] = if direct {
        &[("PUBLISH_MODE", "direct")]
    } else {
        &[]
    };
    outage(
        "Kafka cluster down for 15 s under load",
        configuration,
        OUTAGE,
        extra,
    )
    .await
}

/// The cluster down for 40 s, with `RELAY_MAX_ATTEMPTS=2`: four times the old give-up.
pub async fn broker_down_longer_than_give_up() -> Result<Row, DrillError> {
    outage(
        "Kafka cluster down for 40 s, longer than the relay's old give-up (RELAY_MAX_ATTEMPTS=2)",
        "safe (outbox)",
        Duration::from_secs(40),
        &[("RELAY_MAX_ATTEMPTS", "2")],
    )
    .await
}

async fn outage(
    drill: &'static str,
    configuration: &'static str,
    outage: Duration,
    order_vars: &[(&str, &str)],
) -> Result<Row, DrillError> {
    let c = tokio::task::block_in_place(|| DrillCluster::start("failure-drills", PORT_BASE))?;
    let mut env = DrillEnv::create(Some(&c.bootstrap_servers())).await?;
    for (k, v) in order_vars {
        env.order_vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let direct = env
        .order_vars
        .get("PUBLISH_MODE")
        .is_some_and(|m| m == "direct");
    let (order, payment) = start_both(&env).await?;
    // Paced over ~30 s, so orders keep coming before, during and after the outage.
    let load = spawn_load(&order, 2 * ORDERS, Duration::from_millis(500));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (
        BrokerOutage {
            backlog_start,
            backlog_end,
            failed_at_end_of_outage,
        },
        (),
    ) = all_brokers_down(&c, &env, outage, async {}).await?;

    let (client, report, stats) = finish(&env, load, order, payment).await?;
    let failed_after = count(&env, FAILED_ROWS).await;
    drop(c);

    let mut row = Row::new(drill, configuration, report);
    row.payment_stats = stats;
    row.note = if direct {
        format!(
            "client: {} placed, {} refused fast with 503 (stored, re-pushed from the send log); {}",
            client.placed,
            client.refused,
            crate::matrix::table::summary(&row.report)
        )
    } else {
        format!(
            "client: {} placed, {} refused; outbox backlog {backlog_start} → {backlog_end} during the outage, drained after; FAILED rows {failed_at_end_of_outage} at the end of the outage, {failed_after} after; {}",
            client.placed,
            client.refused,
            crate::matrix::table::summary(&row.report)
        )
    };
    Ok(row)
}

/// What the outbox looked like while the cluster was down.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BrokerOutage {
    /// Unsent rows when the brokers went, and when they came back.
    pub backlog_start: i64,
    pub backlog_end: i64,
    /// Rows the relay gave up on: a transient outage must leave none.
    pub failed_at_end_of_outage: i64,
}

pub(crate) const FAILED_ROWS: &str = "SELECT count(*) FROM outbox WHERE state = 'FAILED'";

/// Every broker of `c` stopped for `outage`, then started again (the fault of this drill
/// and of the soak), with the outbox counted on either side; `during` runs while the
/// brokers are down (the soak's clients that hang up on direct mode).
pub(crate) async fn all_brokers_down<T>(
    c: &DrillCluster,
    env: &DrillEnv,
    outage: Duration,
    during: impl Future<Output = T>,
) -> Result<(BrokerOutage, T), DrillError> {
    let unsent = "SELECT count(*) FROM outbox WHERE state <> 'SENT'";
    cluster(&["stop"], c).await?;
    let backlog_start = count(env, unsent).await;
    let ((), during) = tokio::join!(tokio::time::sleep(outage), during);
    let backlog_end = count(env, unsent).await;
    let failed_at_end_of_outage = count(env, FAILED_ROWS).await;
    cluster(&["start"], c).await?;
    let figures = BrokerOutage {
        backlog_start,
        backlog_end,
        failed_at_end_of_outage,
    };
    Ok((figures, during))
}

/// One count on the orders database (0 if it cannot be read).
pub(crate) async fn count(env: &DrillEnv, sql: &'static str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&env.orders_pool().await)
        .await
        .unwrap_or(0)
}
