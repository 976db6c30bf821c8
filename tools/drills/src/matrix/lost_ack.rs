//! A producer retry after a lost acknowledgement (the note: "retries duplicate").
//!
//! The broker stores a batch but its answer does not reach the producer in time; the
//! producer sends the batch again. Made deterministic on a real cluster of the drill's
//! own: both followers of a one-partition topic are frozen (`SIGSTOP`), so an
//! `acks=all` produce is appended by the leader but cannot be acknowledged; after
//! `request.timeout.ms` the producer retries the same batch; then the followers thaw
//! (well inside `replica.lag.time.max.ms`, so they never leave the in-sync set) and
//! every append is replicated. Without idempotence the retry is a second append: a
//! duplicate. With it, the broker recognises the batch's producer id and sequence
//! numbers and answers with the first append's offset: no duplicate.

use std::time::Duration;

use crate::cluster::DrillCluster;
use crate::store::replication::{read_copies, send, wait_in_sync};
use futures::future::join_all;
use kafka_config::ProducerSettings;
use rdkafka::producer::FutureProducer;
use reconcile::Report;

use crate::{DrillError, Row};

const PORT_BASE: u16 = 9900;
const MESSAGES: usize = 20;
/// The producer gives up on one request after this and retries it.
const REQUEST_TIMEOUT_MS: &str = "3000";
/// Longer than two request timeouts, far below `replica.lag.time.max.ms` (30 s).
const FROZEN: Duration = Duration::from_secs(8);

pub async fn lost_ack(configuration: &'static str, idempotence: bool) -> Result<Row, DrillError> {
    let cluster = tokio::task::block_in_place(|| DrillCluster::start("failure-drills", PORT_BASE))?;
    let bootstrap = cluster.bootstrap_servers();
    let topic = format!("lost-ack-{}", uuid::Uuid::now_v7());
    kafka_config::create_topic(&bootstrap, &topic, 1, 3)
        .await
        .map_err(DrillError::setup)?;
    let (leader, followers) = wait_in_sync(&bootstrap, &topic).await?;

    let mut settings = ProducerSettings::reliable(&bootstrap);
    settings.idempotence = idempotence;
    let producer: FutureProducer = settings
        .client_config()
        // Short, so the lost ack turns into a retry within the freeze.
        .set("request.timeout.ms", REQUEST_TIMEOUT_MS)
        .create()
        .map_err(DrillError::setup)?;
    // Warm: metadata and connections ready before the fault.
    send(&producer, &topic, "warm-up")
        .await
        .map_err(DrillError::setup)?;

    for f in &followers {
        tokio::task::block_in_place(|| cluster.node("freeze", *f))?;
    }
    // Let fetches the followers had pending at the leader expire empty first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ids: Vec<String> = (0..MESSAGES).map(|i| format!("m-{i}")).collect();
    let sends = join_all(ids.iter().map(|id| send(&producer, &topic, id)));
    let thaw = async {
        tokio::time::sleep(FROZEN).await;
        for f in &followers {
            let _ = tokio::task::block_in_place(|| cluster.node("thaw", *f));
        }
    };
    let (results, ()) = tokio::join!(sends, thaw);
    let acknowledged: Vec<&String> = ids
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(id, _)| id)
        .collect();

    let copies = read_copies(&bootstrap, &topic).await?;
    drop(cluster);

    let lost = acknowledged
        .iter()
        .filter(|id| !copies.contains_key(id.as_str()))
        .count() as u64;
    let report = Report {
        accepted: acknowledged.len() as u64,
        published_unique: copies.len() as u64,
        published_duplicate_copies: copies.values().map(|c| *c as u64 - 1).sum(),
        applied: copies.len() as u64,
        lost,
        ..Report::default()
    };
    let mut row = Row::new(
        "producer retry after a lost ack (followers of leader frozen)",
        configuration,
        report,
    );
    row.note = format!(
        "producer level, no services: {} of {MESSAGES} acknowledged (leader {leader}), {} stored once, {} extra copies",
        acknowledged.len(),
        copies.values().filter(|c| **c == 1).count(),
        row.report.published_duplicate_copies
    );
    Ok(row)
}
