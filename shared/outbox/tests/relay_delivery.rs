//! The relay against the real cluster: per-key order with two relays (in waves with one
//! pass in flight and with several, and streaming with several claims in flight), and
//! the lease that returns a crashed relay's rows (crash point R1).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use lifecycle::Shutdown;
use outbox::{ClaimStrategy, Relay, RelayMode};
use serde_json::json;
use sqlx::PgPool;
use test_support::{create_unique_topic, eventually};

const KEYS: usize = 4;
const EVENTS_PER_KEY: usize = 30;

/// How each relay of the per-key order test runs.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// `concurrency` passes in flight at most.
    Waves { concurrency: usize },
    /// At most `max_in_flight` rows claimed and not yet acked: with batches of 7,
    /// several claims in flight.
    Stream { max_in_flight: usize },
}

async fn two_relays_keep_each_keys_order(strategy: ClaimStrategy, mode: Mode) {
    let (db, pool) = common::migrated_db().await;
    let topic = create_unique_topic("per-key-order", 6, 3).await;
    // Each relay holds a connection for LISTEN; the lanes (or the claimer and the
    // settler) share the rest.
    let lanes = match mode {
        Mode::Waves { concurrency } => concurrency,
        Mode::Stream { .. } => 2,
    };
    let relay_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2 + 2 * u32::try_from(lanes).expect("lanes"))
        .connect(&db.url)
        .await
        .expect("relay pool");

    // Two relays, small batches, several in flight each, running while the events are
    // written.
    let stop = Shutdown::default();
    let mut relays = Vec::new();
    for id in ["relay-a", "relay-b"] {
        let mut config = common::relay_config(id, strategy, 7, Duration::from_secs(30));
        match mode {
            Mode::Waves { concurrency } => {
                config.mode = RelayMode::Wave;
                config.concurrency = concurrency;
            }
            Mode::Stream { max_in_flight } => {
                config.mode = RelayMode::Stream;
                config.max_in_flight = max_in_flight;
            }
        }
        let relay = Relay::new(relay_pool.clone(), common::producer(), config);
        relays.push(tokio::spawn(relay.run(stop.clone())));
    }
    // Keys interleaved: event n of every key, then event n+1 ...
    for n in 0..EVENTS_PER_KEY {
        for k in 0..KEYS {
            common::enqueue(
                &pool,
                &topic,
                &format!("key-{k}"),
                json!({ "key": k, "n": n }),
            )
            .await;
        }
    }
    eventually("every row SENT", || async {
        let unsent =
            common::count(&pool, "SELECT count(*) FROM outbox WHERE state <> 'SENT'").await;
        if unsent == 0 { Ok(()) } else { Err(unsent) }
    })
    .await;
    stop.trigger();
    for r in relays {
        r.await.expect("relay task");
    }
    // Which relay sent what depends on timing: printed, not asserted.
    let per_relay: Vec<(String, i64)> =
        sqlx::query_as("SELECT claimed_by, count(*) FROM outbox GROUP BY 1 ORDER BY 1")
            .fetch_all(&pool)
            .await
            .expect("rows per relay");
    eprintln!("{strategy:?}, {mode:?}: rows sent per relay: {per_relay:?}");

    let received = common::read_topic(&topic).await;
    let (copies, per_key) = common::copies_and_order(&received);
    let duplicates: usize = copies.values().map(|c| c - 1).sum();
    assert_eq!(
        copies.len(),
        KEYS * EVENTS_PER_KEY,
        "{strategy:?}: every event published"
    );
    assert_eq!(duplicates, 0, "{strategy:?}: no duplicates without a crash");
    for (key, ns) in per_key {
        let expected: Vec<i64> = (0..EVENTS_PER_KEY as i64).collect();
        assert_eq!(
            ns, expected,
            "{strategy:?}: events of {key} arrive in the order written"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_keep_each_keys_order_with_skip_locked() {
    two_relays_keep_each_keys_order(ClaimStrategy::SkipLocked, Mode::Waves { concurrency: 1 })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_with_four_passes_in_flight_keep_each_keys_order_with_skip_locked() {
    two_relays_keep_each_keys_order(ClaimStrategy::SkipLocked, Mode::Waves { concurrency: 4 })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_streaming_relays_keep_each_keys_order_with_skip_locked() {
    two_relays_keep_each_keys_order(
        ClaimStrategy::SkipLocked,
        Mode::Stream { max_in_flight: 21 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_keep_each_keys_order_with_optimistic_lock() {
    two_relays_keep_each_keys_order(
        ClaimStrategy::OptimisticLock,
        Mode::Waves { concurrency: 1 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_with_four_passes_in_flight_keep_each_keys_order_with_optimistic_lock() {
    two_relays_keep_each_keys_order(
        ClaimStrategy::OptimisticLock,
        Mode::Waves { concurrency: 4 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_streaming_relays_keep_each_keys_order_with_optimistic_lock() {
    two_relays_keep_each_keys_order(
        ClaimStrategy::OptimisticLock,
        Mode::Stream { max_in_flight: 21 },
    )
    .await;
}

async fn a_crashed_relays_rows_are_sent_after_the_lease(strategy: ClaimStrategy) {
    let (_db, pool) = common::migrated_db().await;
    let topic = create_unique_topic("lease", 3, 3).await;
    for k in 0..5 {
        common::enqueue(&pool, &topic, &format!("key-{k}"), json!({ "k": k })).await;
    }
    // Crash point R1: a relay claims the rows and dies before sending.
    let lease = Duration::from_secs(2);
    let crashed = common::relay(&pool, "crashed", strategy, 100, lease);
    assert_eq!(crashed.claim().await.expect("claim").len(), 5);
    drop(crashed);

    // While the lease holds, nobody else may take them...
    let survivor = common::relay(&pool, "survivor", strategy, 100, lease);
    let report = survivor.relay_once().await.expect("pass");
    assert_eq!(
        report.claimed, 0,
        "{strategy:?}: leased rows are not claimable"
    );
    // ...and once it runs out, the survivor sends them (leases end a few ms apart, so
    // this may take more than one pass).
    let sent = std::sync::atomic::AtomicUsize::new(0);
    eventually("the lease runs out", || async {
        let report = survivor.relay_once().await.map_err(|e| e.to_string())?;
        assert_eq!(report.failed, 0, "{report:?}");
        let total = sent.fetch_add(report.sent, std::sync::atomic::Ordering::SeqCst) + report.sent;
        if total == 5 {
            Ok(())
        } else {
            Err(format!("{total} sent so far"))
        }
    })
    .await;
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM outbox")
        .fetch_all(&pool)
        .await
        .expect("q");
    assert!(
        attempts.iter().all(|a| *a == 2),
        "{strategy:?}: claimed twice each: {attempts:?}"
    );
    let received = common::read_topic(&topic).await;
    assert_eq!(
        received.len(),
        5,
        "{strategy:?}: nothing lost, nothing doubled: {received:?}"
    );
}

#[tokio::test]
async fn a_crashed_relays_rows_are_sent_after_the_lease_with_skip_locked() {
    a_crashed_relays_rows_are_sent_after_the_lease(ClaimStrategy::SkipLocked).await;
}

#[tokio::test]
async fn a_crashed_relays_rows_are_sent_after_the_lease_with_optimistic_lock() {
    a_crashed_relays_rows_are_sent_after_the_lease(ClaimStrategy::OptimisticLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_outbox_relay_processes_drain_one_table_and_stop_on_sigterm() {
    let (db, pool) = common::migrated_db().await;
    let topic = create_unique_topic("relay-binary", 6, 3).await;
    let bootstrap = &test_support::ensure_stack().kafka_bootstrap_servers;
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
            .env("DATABASE_URL", &db.url)
            .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
            .env("RELAY_BATCH_SIZE", "5")
            .env("RELAY_POLL_MS", "100")
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("start outbox-relay")
    };
    let mut processes = [spawn(), spawn()];
    for i in 0..60 {
        common::enqueue(&pool, &topic, &format!("key-{}", i % 12), json!({ "i": i })).await;
    }
    eventually("both processes drain the outbox", || async {
        let unsent =
            common::count(&pool, "SELECT count(*) FROM outbox WHERE state <> 'SENT'").await;
        if unsent == 0 { Ok(()) } else { Err(unsent) }
    })
    .await;
    for p in &processes {
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(p.id().to_string())
            .status();
        assert!(status.is_ok_and(|s| s.success()));
    }
    for p in &mut processes {
        let status = p.wait().expect("wait");
        assert!(status.success(), "graceful exit on SIGTERM: {status}");
    }
    let received = common::read_topic(&topic).await;
    assert_eq!(received.len(), 60, "each event once");
}

/// A relay slower than its lease: it claims, stalls past the lease, then sends anyway.
/// Meanwhile another relay has claimed the rows again, sent and marked them. The slow
/// relay's send is a second copy of each event (same event id: the consumer's inbox
/// absorbs it), and its mark-sent, guarded by the version it claimed, changes nothing.
#[tokio::test]
async fn a_relay_slower_than_its_lease_sends_a_copy_and_its_mark_changes_nothing() {
    let (_db, pool) = common::migrated_db().await;
    let topic = create_unique_topic("slow-relay", 3, 3).await;
    for k in 0..5 {
        common::enqueue(&pool, &topic, &format!("key-{k}"), json!({ "k": k })).await;
    }
    // Long enough for a delivery timeout (half the lease) that a loaded machine meets.
    let lease = Duration::from_secs(3);
    let slow = common::relay(&pool, "slow", ClaimStrategy::SkipLocked, 100, lease);
    let claimed = slow.claim().await.expect("claim");
    assert_eq!(claimed.len(), 5);

    // The slow relay stalls (a GC pause, a frozen VM) past its lease ...
    tokio::time::sleep(lease + Duration::from_millis(500)).await;
    // ... and a healthy relay takes the rows over, sends and marks them.
    let healthy = common::relay(&pool, "healthy", ClaimStrategy::SkipLocked, 100, lease);
    let report = healthy.relay_once().await.expect("healthy pass");
    assert_eq!((report.claimed, report.sent), (5, 5), "{report:?}");

    // Where the healthy relay's records went: what the rows must keep saying.
    let placed = |pool: PgPool| async move {
        sqlx::query_as::<_, (uuid::Uuid, Option<i32>, Option<i64>)>(
            "SELECT id, kafka_partition, kafka_offset FROM outbox ORDER BY seq",
        )
        .fetch_all(&pool)
        .await
        .expect("rows")
    };
    let by_healthy = placed(pool.clone()).await;

    // The slow relay wakes up and finishes its pass with the rows it claimed.
    let late = slow.publish_and_mark(claimed).await.expect("slow pass");
    assert_eq!(late.sent, 5, "its sends were acked: {late:?}");
    let owners: Vec<(String, String)> =
        sqlx::query_as("SELECT claimed_by, state FROM outbox ORDER BY seq")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert!(
        owners
            .iter()
            .all(|(by, state)| by == "healthy" && state == "SENT"),
        "the late mark changed nothing: {owners:?}"
    );
    // The guard's effect: without `version = claimed version` the late mark would
    // overwrite each row with the slow relay's copy (another offset), and the row would
    // point at the duplicate instead of the record the healthy relay published.
    assert_eq!(
        placed(pool.clone()).await,
        by_healthy,
        "the rows still say where the healthy relay's records are"
    );
    let received = common::read_topic(&topic).await;
    let mut copies: HashMap<String, usize> = HashMap::new();
    for r in &received {
        *copies.entry(r.event_id.clone()).or_default() += 1;
    }
    eprintln!(
        "slow relay: {} records on the topic for {} events",
        received.len(),
        copies.len()
    );
    assert_eq!(copies.len(), 5, "every event published");
    assert!(
        copies.values().all(|c| *c == 2),
        "each event twice, under one event id: {copies:?}"
    );
}
