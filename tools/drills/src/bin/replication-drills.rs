//! `make drills-replication`: the store-stage drills on a cluster of their own (3 brokers
//! on ports 9392-9394, a dedicated controller, exporters on 9592-9595, a Prometheus on
//! 9682; state `.state/kafka-drill`), printed as a table and saved as Markdown under
//! `drill-results/`.
//!
//! `DRILLS=failover,min-isr,rf,unclean,kill,outbox` picks drills (default: all);
//! `DRILL_MESSAGES` (200) sets the records per run; `DRILL_PORT_BASE` (9392) moves the
//! cluster; `DRILL_POSTGRES_URL` is the server for the outbox drill's scratch database.

// A command-line tool: its stdout is the report.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use anyhow::Context;

use drills::cluster::DrillCluster;
use drills::store::outbox_relay::{Fault, relay_through};
use drills::store::prometheus::DrillPrometheus;
use drills::store::replication::{
    AlertCheck, Outcome, leader_failover, too_few_in_sync_replicas, whole_cluster_kill,
};
use drills::store::replication_factor::{LeaderLoss, replication_factor};
use drills::store::unclean_election::unclean_election;
use kafka_config::Acks;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}`: the error with the context it gathered on the way out.
            eprintln!("replication-drills: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run() -> anyhow::Result<()> {
    let count: usize = env_or("DRILL_MESSAGES", 200);
    let base: u16 = env_or("DRILL_PORT_BASE", 9392);
    let selected = std::env::var("DRILLS")
        .unwrap_or_else(|_| "failover,min-isr,rf,unclean,kill,outbox".to_owned());
    let wants = |name: &str| selected.split(',').any(|d| d.trim() == name);
    let postgres = std::env::var("DRILL_POSTGRES_URL")
        .unwrap_or_else(|_| service_config::DEFAULT_POSTGRES_SERVER.to_owned());

    println!(
        "starting a drill cluster (KAFKA_CLUSTER=drill, brokers {base}-{}, controller {}, exporters {}-{}) ...",
        base + 2,
        base + 100,
        base + 200,
        base + 203
    );
    let cluster = DrillCluster::start("drill", base).context("the drill cluster")?;
    let prometheus =
        DrillPrometheus::start(&cluster, base + 290).context("the drill's Prometheus")?;
    println!("Prometheus for the drill: {}", prometheus.url());
    let mut rows: Vec<Outcome> = Vec::new();
    let mut record = |o: Outcome| {
        println!("[drill] {}", o.markdown_row());
        rows.push(o);
    };

    if wants("failover") {
        // acks=0 too: the producer does not even wait for the leader, so it is told
        // "stored" for everything it handed to the socket.
        for acks in [Acks::None, Acks::Leader, Acks::All] {
            println!(
                "[drill 1] leader failover with followers frozen, {count} messages, acks={} ...",
                drills::store::replication::acks_name(acks)
            );
            record(
                leader_failover(&cluster, acks, count)
                    .await
                    .context("drill 1")?,
            );
        }
    }
    if wants("min-isr") {
        println!(
            "[drill 2] two of three brokers stopped, {count} messages each with acks=1 and acks=all; waiting for the alerts ..."
        );
        let check = AlertCheck {
            prometheus: &prometheus,
            wait_for_slow_alerts: true,
        };
        for o in too_few_in_sync_replicas(&cluster, count, Some(check))
            .await
            .context("drill 2")?
        {
            record(o);
        }
    }
    if wants("rf") {
        for loss in [LeaderLoss::Killed, LeaderLoss::KilledWithItsDisk] {
            for rf in [1, 3] {
                println!(
                    "[drill 3] RF {rf}, {loss:?}, {count} messages before and {count} during ..."
                );
                record(
                    replication_factor(&cluster, rf, loss, count)
                        .await
                        .context("drill 3")?,
                );
            }
        }
    }
    if wants("unclean") {
        for enabled in [true, false] {
            println!(
                "[drill 4] unclean leader election {}, {count} messages ...",
                if enabled { "enabled" } else { "disabled" }
            );
            record(
                unclean_election(&cluster, enabled, count)
                    .await
                    .context("drill 4")?,
            );
        }
    }
    if wants("kill") {
        println!(
            "[drill 5] whole cluster kill -9 under acks=all load, {} messages ...",
            count * 5
        );
        record(
            whole_cluster_kill(&cluster, count * 5)
                .await
                .context("drill 5")?,
        );
    }
    if wants("outbox") {
        for fault in [Fault::LeaderFailover, Fault::TwoBrokersStopped] {
            println!(
                "[drill 6] outbox relay through {fault:?}, {count} orders before and {count} during ..."
            );
            record(
                relay_through(&cluster, &postgres, fault, count)
                    .await
                    .context("drill 6")?,
            );
        }
    }
    drop(prometheus);
    drop(cluster);

    let mut table = String::from(Outcome::markdown_header());
    for r in &rows {
        table.push('\n');
        table.push_str(&r.markdown_row());
    }
    println!("\n{table}\n");
    let dir = test_support::repo_root().join("drill-results");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("replication.md"), format!("{table}\n"))
        .context("writing drill-results/replication.md")?;
    println!("saved to drill-results/replication.md");
    let unsafe_losses = rows.iter().filter(|r| r.safe && r.lost_acknowledged > 0);
    let broken: Vec<String> = unsafe_losses
        .map(|r| format!("{} / {}", r.drill, r.setting))
        .collect();
    if broken.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("the safe configuration lost acknowledged records in: {broken:?}")
    }
}
