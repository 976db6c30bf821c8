//! **Unclean leader election**: what `unclean.leader.election.enable` trades.
//!
//! 1. A topic with three replicas and `min.insync.replicas=2`; one follower (F1) is
//!    stopped, so it leaves the ISR and misses what follows;
//! 2. `count` records are written with `acks=all` and acknowledged by the two in-sync
//!    replicas (leader L and follower F2) — the safe configuration doing its job;
//! 3. L and F2 are killed (`kill -9`), and F1, the out-of-sync replica, comes back.
//!
//! Disabled (the project's setting): F1 is not eligible; the partition has no leader and
//! waits — unavailable, nothing lost — until L or F2 returns. Enabled (a topic config, set
//! through the admin API when the topic is created): as soon as the controller has fenced
//! the dead nodes and F1 is back, it makes F1 leader, and the records only L and F2 had are
//! gone — also after L and F2 return, since they truncate their logs to the new leader's.

use std::time::{Duration, Instant};

use kafka_config::{Acks, describe_topic};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use crate::cluster::DrillCluster;
use crate::replication::{
    Outcome, drill_producer, join_notes, outcome, read_copies, send, send_all, wait_for_isr,
    wait_in_sync,
};

/// How long the disabled run watches the leaderless partition: well past the broker
/// session timeout (9 s), after which the controller has fenced the killed nodes and
/// decided.
const WAIT_LEADERLESS: Duration = Duration::from_secs(20);

pub async fn unclean_election(
    cluster: &DrillCluster,
    enabled: bool,
    count: usize,
) -> Result<Outcome, String> {
    let bootstrap = cluster.bootstrap_servers();
    let topic = format!(
        "unclean-{}-{}",
        if enabled { "on" } else { "off" },
        std::process::id()
    );
    create_topic(&bootstrap, &topic, enabled).await?;
    let (leader, followers) = wait_in_sync(&bootstrap, &topic).await?;
    let producer = drill_producer(&bootstrap, Acks::All)?;
    send(&producer, &topic, "warm-up")
        .await
        .map_err(|e| format!("warm-up send: {e}"))?;
    let (lagging, in_sync) = (followers[0], followers[1]);

    // F1 leaves the ISR (controlled shutdown) and misses every record below.
    cluster.node("stop", lagging)?;
    wait_for_isr(&bootstrap, &topic, &[leader, in_sync]).await?;
    let (acknowledged, _) = send_all(&producer, &topic, "m", count).await;

    // Both replicas that have the records die; the one that does not comes back.
    cluster.node("kill", leader)?;
    cluster.node("kill", in_sync)?;
    let killed_at = Instant::now();
    cluster.node("start", lagging)?;

    let mut notes = Vec::new();
    if enabled {
        let elected = wait_for_leader(&bootstrap, &topic, Duration::from_secs(90)).await?;
        notes.push(Some(format!(
            "node {elected} (out of sync) elected {:.0}s after the kill",
            killed_at.elapsed().as_secs_f64()
        )));
    } else {
        tokio::time::sleep(WAIT_LEADERLESS.saturating_sub(killed_at.elapsed())).await;
        notes.push(Some(format!(
            "leader {:.0}s after the kill: {}",
            killed_at.elapsed().as_secs_f64(),
            leader_name(current_leader(&bootstrap, &topic).await)
        )));
    }

    // The replicas that had the records return.
    cluster.node("start", leader)?;
    cluster.node("start", in_sync)?;
    wait_in_sync(&bootstrap, &topic).await?;
    let copies = read_copies(&bootstrap, &topic).await?;
    // Counted once L and F2 are back: the unclean leader alone answers reads with
    // OffsetNotAvailable (its high watermark does not advance with fewer than
    // min.insync.replicas in sync, KIP-966), so there is nothing to read before.
    notes.push(Some(if enabled {
        "the returning replicas truncated to the new leader's log".to_owned()
    } else {
        "the partition waited; back when the in-sync replicas returned".to_owned()
    }));
    let mut o = outcome(
        "out-of-sync replica left, in-sync ones killed",
        Acks::All,
        count,
        &acknowledged,
        &copies,
    )
    .with_note(join_notes(&notes));
    o.setting = format!(
        "unclean election {}, acks=all",
        if enabled { "enabled" } else { "disabled" }
    );
    o.safe = !enabled;
    Ok(o)
}

fn leader_name(leader: Option<i32>) -> String {
    match leader {
        Some(l) if l >= 0 => format!("node {l}"),
        _ => "none (partition offline)".to_owned(),
    }
}

async fn current_leader(bootstrap: &str, topic: &str) -> Option<i32> {
    describe_topic(bootstrap, topic, Duration::from_secs(5))
        .await
        .ok()
        .and_then(|v| v.partitions.first().map(|p| p.leader))
}

async fn wait_for_leader(bootstrap: &str, topic: &str, within: Duration) -> Result<i32, String> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(l) = current_leader(bootstrap, topic).await.filter(|l| *l >= 0) {
            return Ok(l);
        }
        if Instant::now() >= deadline {
            return Err(format!("{topic}: no leader within {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// One partition, three replicas, `min.insync.replicas=2`, and the topic-level
/// `unclean.leader.election.enable` (it overrides the brokers' `false`).
async fn create_topic(bootstrap: &str, topic: &str, unclean: bool) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(|e| e.to_string())?;
    let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(3))
        .set("min.insync.replicas", "2")
        .set(
            "unclean.leader.election.enable",
            if unclean { "true" } else { "false" },
        );
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .map_err(|e| e.to_string())?;
    for r in results {
        r.map_err(|(_, code)| format!("creating {topic}: {code}"))?;
    }
    Ok(())
}
