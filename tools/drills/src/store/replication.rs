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
//! **Too few in-sync replicas** — `min.insync.replicas=2`: with two of the three brokers
//! stopped, an `acks=all` producer is refused with `NOT_ENOUGH_REPLICAS` (never told
//! "stored" for a single copy), while `acks=1` still "succeeds" onto the one remaining
//! copy — and the alert rules fire while it lasts.
//!
//! **Whole-cluster `kill -9`** under `acks=all` load: every node dies at once and
//! restarts; records that were acknowledged were in the page cache of at least two
//! brokers, which a process kill does not lose.
//!
//! The other store-stage drills live beside this one: replication factor 1 vs 3
//! (`replication_factor.rs`), unclean leader election (`unclean_election.rs`) and the
//! outbox relay through the faults (`outbox_relay.rs`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::future::join_all;
use kafka_config::{Acks, ProducerSettings, describe_topic, read_topic_to_end};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::cluster::{BROKERS, CONTROLLER, DrillCluster};
use crate::error::DrillError;
use crate::store::prometheus::DrillPrometheus;

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
    /// What else the drill saw: the producer's error, how long a partition had no leader,
    /// which alerts fired.
    pub note: String,
    /// The project's configuration (must lose nothing acknowledged), as opposed to a
    /// teaching toggle that shows what it loses.
    pub safe: bool,
}

impl Outcome {
    pub fn markdown_header() -> &'static str {
        "| drill | setting | attempted | acknowledged | read back | acknowledged but lost | duplicates | what else |\n|---|---|---|---|---|---|---|---|"
    }

    pub fn markdown_row(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            self.drill,
            self.setting,
            self.attempted,
            self.acknowledged,
            self.read_back,
            self.lost_acknowledged,
            self.duplicates,
            self.note.replace('|', "/")
        )
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }
}

/// Runs the leader-failover drill once with `acks`, sending `count` records while the
/// followers are frozen. Leaves the cluster with all three nodes up again.
pub async fn leader_failover(
    cluster: &DrillCluster,
    acks: Acks,
    count: usize,
) -> Result<Outcome, DrillError> {
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
    let (acknowledged, first_error) = send_all(&producer, &topic, "m", count).await;

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
    )
    .with_note(first_error.map_or(String::new(), |e| format!("producer: {e}"))))
}

/// One record, keyed and valued by `id`. Its error is the broker's or the client's answer
/// (e.g. `NOT_ENOUGH_REPLICAS`, a delivery timeout): a drill counts it, it does not stop
/// the drill.
pub async fn send(producer: &FutureProducer, topic: &str, id: &str) -> Result<(), KafkaError> {
    producer
        .send(
            FutureRecord::to(topic).key(id).payload(id),
            Duration::from_secs(1),
        )
        .await
        .map(|_| ())
        .map_err(|(e, _)| e)
}

pub fn acks_name(acks: Acks) -> &'static str {
    match acks {
        Acks::None => "0",
        Acks::Leader => "1",
        Acks::All => "all",
    }
}

/// Waits until partition 0 has all its replicas in sync; returns (leader, followers).
pub async fn wait_in_sync(bootstrap: &str, topic: &str) -> Result<(i32, Vec<i32>), DrillError> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(view) = describe_topic(bootstrap, topic, Duration::from_secs(5)).await {
            if let Some(p) = view.partitions.first() {
                if p.isr.len() == p.replicas.len() && p.leader >= 0 {
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
            return Err(DrillError::Timeout(format!(
                "{topic}: replicas not in sync within 90s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub(crate) async fn wait_for_new_leader(
    bootstrap: &str,
    topic: &str,
    old: i32,
) -> Result<i32, DrillError> {
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
            return Err(DrillError::Timeout(format!(
                "{topic}: no new leader within 90s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How long the min-ISR drill waits for the alerts, and in which state it accepts them.
#[derive(Debug, Clone, Copy)]
pub struct AlertCheck<'a> {
    pub prometheus: &'a DrillPrometheus,
    /// `true`: wait until `KafkaUnderReplicatedPartitions` has passed its `for: 1m` and
    /// fires (the drills binary). `false`: pending is enough — its expression holds — which
    /// saves `make test` a minute.
    pub wait_for_slow_alerts: bool,
}

/// Two of the three brokers stopped under `min.insync.replicas=2`: one partition, two
/// producers writing to it at once — `acks=all` (ids `all-*`) and `acks=1` (ids `one-*`).
/// Returns one outcome per producer; with `alerts`, the alert rules' verdict goes in the
/// notes.
pub async fn too_few_in_sync_replicas(
    cluster: &DrillCluster,
    count: usize,
    alerts: Option<AlertCheck<'_>>,
) -> Result<Vec<Outcome>, DrillError> {
    let bootstrap = cluster.bootstrap_servers();
    let (topic, leader, followers, all_producer) =
        prepare(&bootstrap, "min-isr", 1, Acks::All).await?;
    let one_producer = drill_producer(&bootstrap, Acks::Leader)?;
    send(&one_producer, &topic, "warm-up")
        .await
        .map_err(|e| DrillError::Unexpected(format!("warm-up send: {e}")))?;

    // A controlled shutdown takes a follower out of the ISR at once; the controller
    // (node 4, untouched) records the shrink. The leader is then alone in the ISR.
    for f in &followers {
        cluster.node("stop", *f)?;
    }
    wait_for_isr(&bootstrap, &topic, &[leader]).await?;
    let (all_acked, all_error) = send_all(&all_producer, &topic, "all", count).await;
    let (one_acked, one_error) = send_all(&one_producer, &topic, "one", count).await;
    let broker_answer = probe_without_retries(&bootstrap, &topic).await;

    let mut alert_note = String::new();
    if let Some(check) = alerts {
        alert_note = wait_for_replication_alerts(check).await?;
        let refusals = check
            .prometheus
            .query(r#"sum(kafka_network_requestmetrics_errors_total{request="Produce",error="NOT_ENOUGH_REPLICAS"})"#)
            .await?
            .unwrap_or(0.0);
        alert_note.push_str(&format!(
            "; produce requests refused NOT_ENOUGH_REPLICAS: {refusals}"
        ));
    }

    for f in &followers {
        cluster.node("start", *f)?;
    }
    wait_in_sync(&bootstrap, &topic).await?;
    let copies = read_copies(&bootstrap, &topic).await?;
    let drill = "2 of 3 brokers stopped (min ISR 2)";
    let all = outcome(
        drill,
        Acks::All,
        count,
        &all_acked,
        &prefixed(&copies, "all-"),
    )
    .with_note(join_notes(&[
        all_error.map(|e| format!("producer: {e}")),
        Some(format!("broker's answer without retries: {broker_answer}")),
        Some(alert_note).filter(|n| !n.is_empty()),
    ]));
    let one = outcome(
        drill,
        Acks::Leader,
        count,
        &one_acked,
        &prefixed(&copies, "one-"),
    )
    .with_note(
        one_error.map_or("one copy only while the others were down".to_owned(), |e| {
            format!("producer: {e}")
        }),
    );
    Ok(vec![one, all])
}

/// What the leader answers an `acks=all` write right now, seen without the producer's
/// retries: the project's producer retries `NOT_ENOUGH_REPLICAS` (it is transient) until
/// its delivery timeout and then reports the timeout, which hides the broker's reason.
async fn probe_without_retries(bootstrap: &str, topic: &str) -> String {
    let mut settings = ProducerSettings::reliable(bootstrap);
    settings.idempotence = false; // idempotence requires retries
    let mut config = settings.client_config();
    config.set("retries", "0");
    let probe: FutureProducer = match config.create() {
        Ok(p) => p,
        Err(e) => return format!("(probe producer: {e})"),
    };
    match send(&probe, topic, "probe").await {
        Ok(()) => "stored (!)".to_owned(),
        Err(e) => e.to_string(),
    }
}

/// Waits for the under-min-ISR alert to fire and the under-replicated one to fire (or be
/// pending); returns a note such as "alerts: KafkaUnderMinIsrPartitions firing, ...".
async fn wait_for_replication_alerts(check: AlertCheck<'_>) -> Result<String, DrillError> {
    let p = check.prometheus;
    eprintln!(
        "[drill] waiting for the alert rules (Prometheus {}) ...",
        p.url()
    );
    p.wait_for_alerts(
        &["KafkaUnderMinIsrPartitions"],
        &["firing"],
        Duration::from_secs(90),
    )
    .await?;
    let slow_states: &[&str] = if check.wait_for_slow_alerts {
        &["firing"]
    } else {
        &["pending", "firing"]
    };
    let alerts = p
        .wait_for_alerts(
            &["KafkaUnderReplicatedPartitions"],
            slow_states,
            Duration::from_secs(150),
        )
        .await?;
    let under_replicated = p
        .query("sum(kafka_server_replicamanager_underreplicatedpartitions)")
        .await?
        .unwrap_or(f64::NAN);
    let mut states: Vec<String> = alerts
        .iter()
        .map(|a| format!("{} {}", a.name(), a.state))
        .collect();
    states.sort();
    states.dedup();
    Ok(format!(
        "alerts: {} (under-replicated partitions: {under_replicated})",
        states.join(", ")
    ))
}

/// Waits until partition 0's ISR is exactly `isr` (in any order).
pub(crate) async fn wait_for_isr(
    bootstrap: &str,
    topic: &str,
    isr: &[i32],
) -> Result<(), DrillError> {
    let mut want = isr.to_vec();
    want.sort_unstable();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(view) = describe_topic(bootstrap, topic, Duration::from_secs(5)).await {
            if let Some(p) = view.partitions.first() {
                let mut have = p.isr.clone();
                have.sort_unstable();
                if have == want {
                    return Ok(());
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(DrillError::Timeout(format!(
                "{topic}: ISR did not become {isr:?} within 90s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn prefixed(copies: &HashMap<String, usize>, prefix: &str) -> HashMap<String, usize> {
    copies
        .iter()
        .filter(|(id, _)| id.starts_with(prefix))
        .map(|(id, n)| (id.clone(), *n))
        .collect()
}

pub(crate) fn join_notes(notes: &[Option<String>]) -> String {
    notes
        .iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join("; ")
}

/// Sends `acks=all` records for a while, `kill -9`s all three nodes mid-stream,
/// restarts them and counts what survived.
pub async fn whole_cluster_kill(
    cluster: &DrillCluster,
    count: usize,
) -> Result<Outcome, DrillError> {
    let bootstrap = cluster.bootstrap_servers();
    let topic = format!("cluster-kill-{}", std::process::id());
    kafka_config::create_topic(&bootstrap, &topic, 3, 3)
        .await
        .map_err(DrillError::unexpected)?;
    wait_in_sync(&bootstrap, &topic).await?;
    let producer = drill_producer(&bootstrap, Acks::All)?;
    send(&producer, &topic, "warm-up")
        .await
        .map_err(|e| DrillError::Unexpected(format!("warm-up send: {e}")))?;

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
    for id in BROKERS.into_iter().chain([CONTROLLER]) {
        cluster.node("kill", id)?;
    }
    killed.store(true, std::sync::atomic::Ordering::SeqCst);
    let results = sending.await.map_err(DrillError::unexpected)?;
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
pub(crate) async fn prepare(
    bootstrap: &str,
    prefix: &str,
    partitions: i32,
    acks: Acks,
) -> Result<(String, i32, Vec<i32>, FutureProducer), DrillError> {
    let topic = format!("{prefix}-{}-{}", acks_name(acks), std::process::id());
    kafka_config::create_topic(bootstrap, &topic, partitions, 3)
        .await
        .map_err(DrillError::unexpected)?;
    let (leader, followers) = wait_in_sync(bootstrap, &topic).await?;
    let producer = drill_producer(bootstrap, acks)?;
    // One record while everything is healthy: connections and metadata are warm.
    send(&producer, &topic, "warm-up")
        .await
        .map_err(|e| DrillError::Unexpected(format!("warm-up send: {e}")))?;
    Ok((topic, leader, followers, producer))
}

/// Sends `<prefix>-0` .. `<prefix>-{count-1}` at once; returns the ids the producer was
/// told are stored, and the first refusal.
pub(crate) async fn send_all(
    producer: &FutureProducer,
    topic: &str,
    prefix: &str,
    count: usize,
) -> (HashSet<String>, Option<String>) {
    let ids: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    let results = join_all(ids.iter().map(|id| send(producer, topic, id))).await;
    let first_error = results
        .iter()
        .find_map(|r| r.as_ref().err().map(ToString::to_string));
    if let Some(e) = &first_error {
        eprintln!("[drill] first refusal seen by the producer: {e}");
    }
    let acked = ids
        .into_iter()
        .zip(results)
        .filter(|(_, r)| r.is_ok())
        .map(|(id, _)| id)
        .collect();
    (acked, first_error)
}

/// The project's producer settings with `acks` (idempotent with `acks=all`) and an 8 s
/// delivery timeout, so a refused record is reported within the drill's patience.
pub(crate) fn drill_producer(bootstrap: &str, acks: Acks) -> Result<FutureProducer, DrillError> {
    drill_producer_with_timeout(bootstrap, acks, 8_000)
}

pub(crate) fn drill_producer_with_timeout(
    bootstrap: &str,
    acks: Acks,
    delivery_timeout_ms: u32,
) -> Result<FutureProducer, DrillError> {
    let mut settings = ProducerSettings::reliable(bootstrap);
    settings.acks = acks;
    settings.idempotence = acks == Acks::All;
    settings.delivery_timeout_ms = delivery_timeout_ms;
    settings
        .client_config()
        .create()
        .map_err(DrillError::unexpected)
}

/// Records in the topic by payload (the record id), with how many copies of each.
pub async fn read_copies(
    bootstrap: &str,
    topic: &str,
) -> Result<HashMap<String, usize>, DrillError> {
    let mut copies = count_copies(bootstrap, topic, |r| {
        Some(String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).into_owned())
    })
    .await?;
    copies.remove("warm-up");
    Ok(copies)
}

/// Reads the whole topic and counts its records by `id_of` (a record without an id is
/// not counted): more than one copy of an id is a duplicate the producer wrote.
pub(crate) async fn count_copies(
    bootstrap: &str,
    topic: &str,
    id_of: impl Fn(&kafka_config::Record) -> Option<String>,
) -> Result<HashMap<String, usize>, DrillError> {
    let records = read_topic_to_end(bootstrap, topic, Duration::from_secs(60))
        .await
        .map_err(DrillError::unexpected)?;
    let mut copies: HashMap<String, usize> = HashMap::new();
    for id in records.iter().filter_map(id_of) {
        *copies.entry(id).or_default() += 1;
    }
    Ok(copies)
}

pub(crate) fn outcome(
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
        note: String::new(),
        safe: acks == Acks::All,
    }
}
