//! `make drills-replication`: the store-stage drills on a 3-node cluster of their own
//! (ports 9392-9394, state `.state/kafka-drill`), printed as a table and saved as
//! Markdown under `drill-results/`.

// A command-line tool: its stdout is the report.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use drills::cluster::DrillCluster;
use drills::replication::{Outcome, leader_failover, too_few_in_sync_replicas, whole_cluster_kill};
use kafka_config::Acks;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("replication-drills: error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let count: usize = std::env::var("DRILL_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    println!("starting a 3-node drill cluster (KAFKA_CLUSTER=drill, ports 9392-9394)...");
    let cluster = DrillCluster::start("drill", 9392)?;
    let mut rows = Vec::new();
    // DRILLS=kill runs only the last drill (the whole-cluster kill).
    let only_kill = std::env::var("DRILLS").is_ok_and(|v| v == "kill");
    for acks in [Acks::Leader, Acks::All].into_iter().filter(|_| !only_kill) {
        println!(
            "[drill] leader failover with followers frozen, {count} messages, acks={acks:?} ..."
        );
        let outcome = leader_failover(&cluster, acks, count).await?;
        println!("[drill] {outcome:?}");
        rows.push(outcome);
    }
    for acks in [Acks::Leader, Acks::All].into_iter().filter(|_| !only_kill) {
        println!("[drill] two of three nodes stopped, {count} messages, acks={acks:?} ...");
        let outcome = too_few_in_sync_replicas(&cluster, acks, count).await?;
        println!("[drill] {outcome:?}");
        rows.push(outcome);
    }
    println!(
        "[drill] whole cluster kill -9 under acks=all load, {} messages ...",
        count * 5
    );
    let outcome = whole_cluster_kill(&cluster, count * 5).await?;
    println!("[drill] {outcome:?}");
    rows.push(outcome);
    drop(cluster);

    let mut table = String::from(Outcome::markdown_header());
    for r in &rows {
        table.push('\n');
        table.push_str(&r.markdown_row());
    }
    println!("\n{table}\n");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../drill-results");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("replication.md"), format!("{table}\n")).map_err(|e| e.to_string())?;
    println!("saved to drill-results/replication.md");
    if rows
        .iter()
        .any(|r| r.setting == "acks=all" && r.lost_acknowledged > 0)
    {
        return Err("acks=all lost acknowledged records".to_owned());
    }
    Ok(())
}
