//! **Replication factor 1 vs 3** — the note's Q1: "does `acks=all` guarantee no loss? No:
//! with a single replica there is nothing to sync with."
//!
//! The same fault on an RF 1 and an RF 3 topic, both written with `acks=all`:
//! 1. `count` records are acknowledged while everything is healthy;
//! 2. the partition leader is killed (`kill -9`) — and, in the second variant, its copy of
//!    the partition is deleted too, as when a machine is replaced with a blank disk;
//! 3. `count` more records are sent while it is down (20 s delivery timeout);
//! 4. the node is restarted, and everything is read back.
//!
//! With RF 1 a dead leader means no leader: the partition is unavailable until the node
//! returns, and if its disk did not survive, every acknowledged record is gone. With RF 3 a
//! follower takes over within the broker session timeout and the blank node copies the
//! partition back from the new leader.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use kafka_config::{Acks, describe_topic};

use crate::cluster::DrillCluster;
use crate::error::DrillError;
use crate::store::replication::{
    Outcome, drill_producer, drill_producer_with_timeout, outcome, read_copies, send_all,
    wait_in_sync,
};

/// What happens to the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderLoss {
    /// `kill -9`: the process dies, the page cache and the disk survive.
    Killed,
    /// `kill -9` and the partition's files deleted: a machine replaced with a new disk.
    KilledWithItsDisk,
}

pub async fn replication_factor(
    cluster: &DrillCluster,
    rf: i32,
    loss: LeaderLoss,
    count: usize,
) -> Result<Outcome, DrillError> {
    let bootstrap = cluster.bootstrap_servers();
    let topic = format!("rf{rf}-{}-{}", loss_name(loss), std::process::id());
    // RF 1 gets min.insync.replicas=1 (it cannot have more); RF 3 gets 2.
    kafka_config::create_topic(&bootstrap, &topic, 1, rf)
        .await
        .map_err(DrillError::unexpected)?;
    let (leader, _) = wait_in_sync(&bootstrap, &topic).await?;
    let producer = drill_producer(&bootstrap, Acks::All)?;
    let (before, _) = send_all(&producer, &topic, "before", count).await;

    let killed_at = Instant::now();
    cluster.node("kill", leader)?;
    if loss == LeaderLoss::KilledWithItsDisk {
        let dir = cluster.data_dir(leader).join(format!("{topic}-0"));
        std::fs::remove_dir_all(&dir)
            .map_err(|e| DrillError::Unexpected(format!("deleting {}: {e}", dir.display())))?;
    }
    // Sent right after the kill; a new leader (RF 3) takes them within the timeout.
    let during_producer = drill_producer_with_timeout(&bootstrap, Acks::All, 20_000)?;
    let watch = watch_leader(&bootstrap, &topic, leader, killed_at);
    let (sent, watched) = tokio::join!(send_all(&during_producer, &topic, "during", count), watch);
    let (during, during_error) = sent;

    let down_for = killed_at.elapsed();
    cluster.node("start", leader)?;
    wait_in_sync(&bootstrap, &topic).await?;
    let copies = read_copies(&bootstrap, &topic).await?;
    let acknowledged: HashSet<String> = before.union(&during).cloned().collect();
    let drill = match loss {
        LeaderLoss::Killed => "leader kill -9",
        LeaderLoss::KilledWithItsDisk => "leader kill -9, its disk lost",
    };
    let availability = match watched {
        Some((new_leader, after)) => {
            format!("node {new_leader} led after {:.1}s", after.as_secs_f64())
        }
        None => format!(
            "no leader until the node returned ({:.0}s)",
            down_for.as_secs_f64()
        ),
    };
    let refused = if during.len() < count {
        format!(
            "; {} of {count} sent during the outage refused{}",
            count - during.len(),
            during_error.map_or(String::new(), |e| format!(" ({e})"))
        )
    } else {
        String::new()
    };
    let mut o = outcome(drill, Acks::All, 2 * count, &acknowledged, &copies)
        .with_note(format!("{availability}{refused}"));
    o.setting = format!("RF {rf}, acks=all");
    o.safe = rf >= 3;
    Ok(o)
}

fn loss_name(loss: LeaderLoss) -> &'static str {
    match loss {
        LeaderLoss::Killed => "kill",
        LeaderLoss::KilledWithItsDisk => "disk",
    }
}

/// Watches partition 0 for up to 25 s: which node leads next, and how long after the kill.
async fn watch_leader(
    bootstrap: &str,
    topic: &str,
    old: i32,
    since: Instant,
) -> Option<(i32, Duration)> {
    while since.elapsed() < Duration::from_secs(25) {
        if let Ok(view) = describe_topic(bootstrap, topic, Duration::from_secs(2)).await {
            if let Some(p) = view.partitions.first() {
                if p.leader >= 0 && p.leader != old {
                    return Some((p.leader, since.elapsed()));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}
