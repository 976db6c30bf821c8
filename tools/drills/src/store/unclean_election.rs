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
//!
//! **The premise is checked before anything is counted.** Right after the kill the
//! metadata still names L as leader: the controller fences a broker only once its
//! heartbeats have been missing for `broker.session.timeout.ms` (9 s). An earlier version
//! took that stale "leader" for an election, restarted L and F2 a few seconds after the
//! kill, and L simply stayed leader with every record: 0 lost, by chance. Under eligible
//! leader replicas (KIP-966, on by default since Kafka 4.1) there is a second way to keep
//! the data: if L and F2 come back before F1 is elected, the controller may elect the
//! last known leader again. So each run establishes, in this order, that
//! - F1's log really is behind (its partition log is shorter on disk than the leader's);
//! - L and F2 are fenced (the cluster metadata no longer lists them);
//! - enabled: the leader **is** F1; disabled: there is no leader at all;
//!
//! and only then restarts L and F2 and counts. A run whose premise is not met is said so
//! and tried again, at most [`ATTEMPTS`] times: the drill neither passes nor fails by
//! chance.

use std::time::{Duration, Instant};

use kafka_config::{Acks, describe_cluster, describe_topic};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use crate::cluster::DrillCluster;
use crate::error::DrillError;
use crate::store::replication::{
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
) -> Result<Outcome, DrillError> {
    let mut unmet = Vec::new();
    for attempt in 1..=ATTEMPTS {
        match attempt_once(cluster, enabled, count, attempt).await? {
            Attempt::Counted(mut o) => {
                if !unmet.is_empty() {
                    o.note = format!("{}; premise not met before: {}", o.note, unmet.join(" / "));
                }
                return Ok(o);
            }
            Attempt::PremiseNotMet(why) => {
                eprintln!("[drill 4] attempt {attempt}: premise not met ({why}); trying again");
                unmet.push(why);
            }
        }
    }
    Err(DrillError::Unexpected(format!(
        "unclean election {}: the premise was not met in {ATTEMPTS} attempts: {}",
        if enabled { "enabled" } else { "disabled" },
        unmet.join(" / ")
    )))
}

/// How many times a run whose premise was not met is tried again.
pub const ATTEMPTS: usize = 3;

/// The outcome of one try: counted, or abandoned before counting (and why).
enum Attempt {
    Counted(Outcome),
    PremiseNotMet(String),
}

async fn attempt_once(
    cluster: &DrillCluster,
    enabled: bool,
    count: usize,
    attempt: usize,
) -> Result<Attempt, DrillError> {
    let bootstrap = cluster.bootstrap_servers();
    let topic = format!(
        "unclean-{}-{}-{attempt}",
        if enabled { "on" } else { "off" },
        std::process::id()
    );
    create_topic(&bootstrap, &topic, enabled).await?;
    let (leader, followers) = wait_in_sync(&bootstrap, &topic).await?;
    let producer = drill_producer(&bootstrap, Acks::All)?;
    send(&producer, &topic, "warm-up")
        .await
        .map_err(|e| DrillError::Unexpected(format!("warm-up send: {e}")))?;
    let (lagging, in_sync) = (followers[0], followers[1]);

    // F1 leaves the ISR (controlled shutdown) and misses every record below.
    cluster.node("stop", lagging)?;
    wait_for_isr(&bootstrap, &topic, &[leader, in_sync]).await?;
    let (acknowledged, _) = send_all(&producer, &topic, "m", count).await;
    drop(producer);

    // Premise 1: F1 really is behind. It is stopped, so its log on disk is final; the
    // leader's holds the acknowledged records (written to its page cache, which the
    // file size already shows).
    let lagging_bytes = partition_log_bytes(cluster, lagging, &topic);
    let leader_bytes = partition_log_bytes(cluster, leader, &topic);
    if acknowledged.is_empty() || lagging_bytes >= leader_bytes {
        restart_all(cluster, &[lagging])?;
        return Ok(Attempt::PremiseNotMet(format!(
            "node {lagging} not behind: {lagging_bytes} bytes against the leader's {leader_bytes}, {} acknowledged",
            acknowledged.len()
        )));
    }

    // Both replicas that have the records die; the one that does not comes back.
    cluster.node("kill", leader)?;
    cluster.node("kill", in_sync)?;
    let killed_at = Instant::now();
    cluster.node("start", lagging)?;
    // What a reader of the metadata sees once F1 answers: the old drill took this for
    // the election. Before the fencing it is the dead leader.
    let first_seen = current_leader(&bootstrap, &topic).await;
    let first_seen_at = killed_at.elapsed().as_secs_f64();
    let mut notes = vec![Some(format!(
        "node {lagging} behind ({lagging_bytes} against {leader_bytes} log bytes)"
    ))];

    // Premise 2: the controller has fenced L and F2.
    if let Err(why) = wait_until_fenced(&bootstrap, &[leader, in_sync], FENCE_WITHIN).await {
        restart_all(cluster, &[leader, in_sync])?;
        return Ok(Attempt::PremiseNotMet(why.to_string()));
    }
    notes.push(Some(format!(
        "{first_seen_at:.0}s after the kill, node {lagging} back, the metadata named {} as leader; nodes {leader} and {in_sync} fenced after {:.0}s",
        leader_name(first_seen),
        killed_at.elapsed().as_secs_f64()
    )));

    // Premise 3: enabled, F1 is the leader; disabled, nobody is.
    if enabled {
        match wait_for_leader(&bootstrap, &topic, Duration::from_secs(60)).await {
            Ok(elected) if elected == lagging => notes.push(Some(format!(
                "node {elected} (out of sync) elected {:.0}s after the kill",
                killed_at.elapsed().as_secs_f64()
            ))),
            Ok(other) => {
                restart_all(cluster, &[leader, in_sync])?;
                return Ok(Attempt::PremiseNotMet(format!(
                    "leader is node {other}, not the lagging node {lagging}"
                )));
            }
            Err(why) => {
                restart_all(cluster, &[leader, in_sync])?;
                return Ok(Attempt::PremiseNotMet(why.to_string()));
            }
        }
    } else {
        tokio::time::sleep(WAIT_LEADERLESS.saturating_sub(killed_at.elapsed())).await;
        // Not a premise but the result: a leader here is the setting failing, and the
        // count below shows what it cost.
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
    Ok(Attempt::Counted(o))
}

/// How long the controller may take to fence the killed nodes: the broker session
/// timeout (9 s) with room for a loaded machine.
const FENCE_WITHIN: Duration = Duration::from_secs(60);

/// Starts `nodes` again after an abandoned attempt, so the next one finds all three up.
fn restart_all(cluster: &DrillCluster, nodes: &[i32]) -> Result<(), DrillError> {
    for n in nodes {
        cluster.node("start", *n)?;
    }
    Ok(())
}

/// The bytes of partition 0's log segments in node `id`'s data directory.
fn partition_log_bytes(cluster: &DrillCluster, id: i32, topic: &str) -> u64 {
    let dir = cluster.data_dir(id).join(format!("{topic}-0"));
    std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Waits until the cluster metadata lists none of `nodes`: the controller has fenced
/// them, and only then may it move leadership away from them.
async fn wait_until_fenced(
    bootstrap: &str,
    nodes: &[i32],
    within: Duration,
) -> Result<(), DrillError> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(view) = describe_cluster(bootstrap, Duration::from_secs(5)).await {
            if !nodes.iter().any(|n| view.broker_ids.contains(n)) {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(DrillError::Timeout(format!(
                "nodes {nodes:?} not fenced within {within:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn leader_name(leader: Option<i32>) -> String {
    match leader {
        Some(l) if l >= 0 => format!("node {l}"),
        Some(_) => "none (partition offline)".to_owned(),
        None => "nobody (no metadata answer)".to_owned(),
    }
}

async fn current_leader(bootstrap: &str, topic: &str) -> Option<i32> {
    describe_topic(bootstrap, topic, Duration::from_secs(5))
        .await
        .ok()
        .and_then(|v| v.partitions.first().map(|p| p.leader))
}

async fn wait_for_leader(
    bootstrap: &str,
    topic: &str,
    within: Duration,
) -> Result<i32, DrillError> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(l) = current_leader(bootstrap, topic).await.filter(|l| *l >= 0) {
            return Ok(l);
        }
        if Instant::now() >= deadline {
            return Err(DrillError::Timeout(format!(
                "{topic}: no leader within {within:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// One partition, three replicas, `min.insync.replicas=2`, and the topic-level
/// `unclean.leader.election.enable` (it overrides the brokers' `false`).
async fn create_topic(bootstrap: &str, topic: &str, unclean: bool) -> Result<(), DrillError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(DrillError::unexpected)?;
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
        .map_err(DrillError::unexpected)?;
    for r in results {
        r.map_err(|(_, code)| DrillError::Unexpected(format!("creating {topic}: {code}")))?;
    }
    Ok(())
}
