//! The whole Kafka cluster unavailable for 15 s while orders keep coming. With the
//! outbox the API keeps accepting (the rows wait, the relay backs off and drains the
//! backlog when the brokers return); in direct mode the API fails fast with 503 — the
//! order is stored and its event re-pushed from the send log. Neither loses anything.
//!
//! The brokers are stopped for real, so this drill runs on a cluster of its own
//! (`KAFKA_CLUSTER=failure-drills`, ports 9900-9902), never the shared one.

use std::time::Duration;

use drills::cluster::DrillCluster;

use crate::{DrillEnv, DrillError, Row};

use super::{ORDERS, finish, spawn_load, start_both};

const PORT_BASE: u16 = 9900;
const OUTAGE: Duration = Duration::from_secs(15);

async fn cluster(args: &'static [&'static str], c: &DrillCluster) -> Result<(), DrillError> {
    // `kafka.sh` blocks until the nodes are up or down; keep it off the runtime's threads.
    tokio::task::block_in_place(|| c.run(args)).map_err(DrillError::Setup)
}

pub async fn broker_down(configuration: &'static str, direct: bool) -> Result<Row, DrillError> {
    let c = tokio::task::block_in_place(|| DrillCluster::start("failure-drills", PORT_BASE))
        .map_err(DrillError::Setup)?;
    let mut env = DrillEnv::create(Some(&c.bootstrap_servers())).await?;
    if direct {
        env.order_vars
            .insert("PUBLISH_MODE".into(), "direct".into());
    }
    let (order, payment) = start_both(&env).await?;
    // Paced over ~30 s, so orders keep coming before, during and after the outage.
    let load = spawn_load(&order, 2 * ORDERS, Duration::from_millis(500));
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster(&["stop"], &c).await?;
    let orders = env.orders_pool().await;
    let unsent = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox WHERE state <> 'SENT'")
            .fetch_one(&orders)
            .await
            .unwrap_or(0)
    };
    let backlog_start = unsent().await;
    tokio::time::sleep(OUTAGE).await;
    let backlog_end = unsent().await;
    cluster(&["start"], &c).await?;

    let (client, report, stats) = finish(&env, load, order, payment).await?;
    drop(c);

    let mut row = Row::new(
        "Kafka cluster down for 15 s under load",
        configuration,
        report,
    );
    row.payment_stats = stats;
    row.note = if direct {
        format!(
            "client: {} placed, {} refused fast with 503 (stored, re-pushed from the send log); {}",
            client.placed,
            client.refused,
            crate::matrix::summary(&row.report)
        )
    } else {
        format!(
            "client: {} placed, {} refused; outbox backlog {backlog_start} → {backlog_end} during the outage, drained after; {}",
            client.placed,
            client.refused,
            crate::matrix::summary(&row.report)
        )
    };
    Ok(row)
}
