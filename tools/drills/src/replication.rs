//! Store-stage drills on a real 3-node cluster (docs/en/03-store.md).
//!
//! **Leader failover** — the note's Q2, "why does `acks=1` lose messages?":
//! 1. a topic with one partition, three replicas, `min.insync.replicas=2`;
//! 2. freeze both followers (`SIGSTOP`): they stay in the ISR for
//!    `replica.lag.time.max.ms` but fetch nothing;
//! 3. produce; with `acks=1` the leader acknowledges alone, with `acks=all` it cannot
//!    (no follower has the records), so the producer is told "failed" — never "stored";
//! 4. `kill -9` the leader, resume the followers: one of them becomes leader without
//!    the records only the old leader had;
//! 5. read the partition back and compare with what was acknowledged.
//!
//! **Too few in-sync replicas** — `min.insync.replicas=2`: with two of the three nodes
//! stopped, an `acks=all` producer is refused (never told "stored" for a single copy),
//! while `acks=1` still "succeeds" onto the one remaining copy.
//!
//! **Whole-cluster `kill -9`** under `acks=all` load: every node dies at once and
//! restarts; records that were acknowledged were in the page cache of at least two
//! brokers, which a process kill does not lose.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::future::join_all;
use kafka_config::{Acks, ProducerSettings, describe_topic, read_topic_to_end};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::cluster::DrillCluster;

/// The counts of one drill run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub drill: &'static str,
    pub setting: String,
    pub attempted: usize,
    /// The producer was told these were stored.
    pub acknowledged: usize,
    /// Distinct records a fresh reader finds afterwards.
    pub read_back: usize,
    /// Acknowledged but not found: the loss the setting allowed.
    pub lost_acknowledged: usize,
    pub duplicates: usize,
}

impl Outcome {
    pub fn markdown_header() -> &'static str {
        "| drill | setting | attempted | acknowledged | read back | acknowledged but lost | duplicates |\n|---|---|---|---|---|---|---|"
    }

    pub fn markdown_row(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            self.drill,
            self.setting,
            self.attempted,
            self.acknowledged,
            self.read_back,
            self.lost_acknowledged,
            self.duplicates
        )
    }
}

/// Runs the leader-failover drill once with `acks`, sending `count` records while the
/// followers are frozen. Leaves the cluster with all three nodes up again.
pub async fn leader_failover(
    cluster: &DrillCluster,
    acks: Acks,
    count: usize,
) -> Result<Outcome, String> {
    let bootstrap = cluster.bootstrap_servers();
    let (topic, leader, followers, producer) = prepare(&bootstrap, "failover", 1, acks).await?;

    for f in &followers {
        cluster.node("freeze", *f)?;
    }
    // A follower may have had a fetch request waiting at the leader when it froze; the
    // leader would answer it with our first records and the kernel would hold them
    // for the follower until it thaws. Let such fetches expire empty first
    // (`replica.fetch.wait.max.ms` is 500 ms) so only the leader gets the records.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acknowledged = send_all(&producer, &topic, count).await;

    // The leader dies with whatever only it had; the followers come back.
    cluster.node("kill", leader)?;
    for f in &followers {
        cluster.node("thaw", *f)?;
    }
    wait_for_new_leader(&bootstrap, &topic, leader).await?;
    let copies = read_copies(&bootstrap, &topic).await?;

    cluster.node("start", leader)?;
    wait_in_sync(&bootstrap, &topic).await?;
    Ok(outcome(
        "leader failover, followers frozen",
        acks,
        count,
        &acknowledged,
        &copies,
    ))
}

async fn send(producer: &FutureProducer, topic: &str, id: &str) -> Result<(), String> {
    producer
        .send(
            FutureRecord::to(topic).key(id).payload(id),
            Duration::from_secs(1),
        )
        .await
        .map(|_| ())
        .map_err(|(e, _)| e.to_string())
}

fn acks_name(acks: Acks) -> &'static str {
    match acks {
        Acks::None => "0",
        Acks::Leader => "1",
        Acks::All => "all",
    }
}

/// Waits until partition 0 has all three replicas in sync; returns (leader, followers).
async fn wait_in_sync(bootstrap: &str, topic: &str) -> Result<(i32, Vec<i32>), String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(view) = describe_topic(bootstrap, topic, Duration::from_secs(5)).await {
            if let Some(p) = view.partitions.first() {
                if p.isr.len() == 3 && p.leader >= 0 {
                    let followers = p
                        .replicas
                        .iter()
                        .copied()
                        .filter(|r| *r != p.leader)
                        .collect();
                    return Ok((p.leader, followers));
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("{topic}: replicas not in sync within 90s"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn wait_for_new_leader(bootstrap: &str, topic: &str, old: i32) -> Result<i32, String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(view) = describe_topic(bootstrap, topic, Duration::from_secs(5)).await {
            if let Some(p) = view.partitions.first() {
                if p.leader >= 0 && p.leader != old {
                    return Ok(p.leader);
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("{topic}: no new leader within 90s"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Produces `count` records with `acks` while two of the three nodes are stopped,
/// counts what was acknowledged, restarts the nodes and counts what is there.
pub async fn too_few_in_sync_replicas(
    cluster: &DrillCluster,
    acks: Acks,
    count: usize,
) -> Result<Outcome, String> {
    let bootstrap = cluster.bootstrap_servers();
    let (topic, _leader, followers, producer) = prepare(&bootstrap, "min-isr", 1, acks).await?;

    for f in &followers {
        cluster.node("stop", *f)?;
    }
    let acknowledged = send_all(&producer, &topic, count).await;
    for f in &followers {
        cluster.node("start", *f)?;
    }
    wait_in_sync(&bootstrap, &topic).await?;
    let copies = read_copies(&bootstrap, &topic).await?;
    Ok(outcome(
        "2 of 3 nodes stopped (min ISR 2)",
        acks,
        count,
        &acknowledged,
        &copies,
    ))
}

/// Sends `acks=all` records for a while, `kill -9`s all three nodes mid-stream,
/// restarts them and counts what survived.
pub async fn whole_cluster_kill(cluster: &DrillCluster, count: usize) -> Result<Outcome, String> {
    let bootstrap = cluster.bootstrap_servers();
    let topic = format!("cluster-kill-{}", std::process::id());
    kafka_config::create_topic(&bootstrap, &topic, 3, 3)
        .await
        .map_err(|e| e.to_string())?;
    wait_in_sync(&bootstrap, &topic).await?;
    let producer = drill_producer(&bootstrap, Acks::All)?;
    send(&producer, &topic, "warm-up")
        .await
        .map_err(|e| format!("warm-up send: {e}"))?;

    // Records go out a few at a time; the kill lands in the middle of the stream, and
    // the stream stops there (what was in flight is answered by the delivery timeout).
    let ids: Vec<String> = (0..count).map(|i| format!("m-{i}")).collect();
    let killed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sending = {
        let (producer, topic, ids, killed) =
            (producer.clone(), topic.clone(), ids.clone(), killed.clone());
        tokio::spawn(async move {
            let mut results = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(20) {
                if killed.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                results.extend(join_all(chunk.iter().map(|id| send(&producer, &topic, id))).await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            results
        })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    for id in 1..=3 {
        cluster.node("kill", id)?;
    }
    killed.store(true, std::sync::atomic::Ordering::SeqCst);
    let results = sending.await.map_err(|e| e.to_string())?;
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        eprintln!("[drill] first failure seen by the producer: {e}");
    }
    let attempted = results.len();
    let acknowledged: HashSet<String> = ids
        .into_iter()
        .zip(results)
        .filter(|(_, r)| r.is_ok())
        .map(|(id, _)| id)
        .collect();
    cluster.run(&["start"])?;
    wait_in_sync(&bootstrap, &topic).await?;
    let copies = read_copies(&bootstrap, &topic).await?;
    Ok(outcome(
        "whole cluster kill -9 and restart",
        Acks::All,
        attempted,
        &acknowledged,
        &copies,
    ))
}

/// A fresh topic (`partitions`, three replicas, min ISR 2) with every replica in sync,
/// and a producer with `acks` that has already delivered one warm-up record.
async fn prepare(
    bootstrap: &str,
    prefix: &str,
    partitions: i32,
    acks: Acks,
) -> Result<(String, i32, Vec<i32>, FutureProducer), String> {
    let topic = format!("{prefix}-{}-{}", acks_name(acks), std::process::id());
    kafka_config::create_topic(bootstrap, &topic, partitions, 3)
        .await
        .map_err(|e| e.to_string())?;
    let (leader, followers) = wait_in_sync(bootstrap, &topic).await?;
    let producer = drill_producer(bootstrap, acks)?;
    // One record while everything is healthy: connections and metadata are warm.
    send(&producer, &topic, "warm-up")
        .await
        .map_err(|e| format!("warm-up send: {e}"))?;
    Ok((topic, leader, followers, producer))
}

/// Sends `m-0` .. `m-{count-1}` at once; returns the ids the producer was told are
/// stored, and prints the first refusal.
async fn send_all(producer: &FutureProducer, topic: &str, count: usize) -> HashSet<String> {
    let ids: Vec<String> = (0..count).map(|i| format!("m-{i}")).collect();
    let results = join_all(ids.iter().map(|id| send(producer, topic, id))).await;
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        eprintln!("[drill] first refusal seen by the producer: {e}");
    }
    ids.into_iter()
        .zip(results)
        .filter(|(_, r)| r.is_ok())
        .map(|(id, _)| id)
        .collect()
}

fn drill_producer(bootstrap: &str, acks: Acks) -> Result<FutureProducer, String> {
    let mut settings = ProducerSettings::reliable(bootstrap);
    settings.acks = acks;
    settings.idempotence = acks == Acks::All;
    settings.delivery_timeout_ms = 8_000;
    settings.client_config().create().map_err(|e| e.to_string())
}

/// Records in the topic by payload (the record id), with how many copies of each.
async fn read_copies(bootstrap: &str, topic: &str) -> Result<HashMap<String, usize>, String> {
    let records = read_topic_to_end(bootstrap, topic, Duration::from_secs(60))
        .await
        .map_err(|e| e.to_string())?;
    let mut copies: HashMap<String, usize> = HashMap::new();
    for r in &records {
        let payload =
            String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).into_owned();
        *copies.entry(payload).or_default() += 1;
    }
    copies.remove("warm-up");
    Ok(copies)
}

fn outcome(
    drill: &'static str,
    acks: Acks,
    attempted: usize,
    acknowledged: &HashSet<String>,
    copies: &HashMap<String, usize>,
) -> Outcome {
    Outcome {
        drill,
        setting: format!("acks={}", acks_name(acks)),
        attempted,
        acknowledged: acknowledged.len(),
        read_back: copies.len(),
        lost_acknowledged: acknowledged
            .iter()
            .filter(|id| !copies.contains_key(*id))
            .count(),
        duplicates: copies.values().map(|c| c - 1).sum(),
    }
}
