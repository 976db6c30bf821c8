//! The streaming relay (`RELAY_MODE=stream`) against the real cluster: killed -9 in the
//! middle of a stream it loses nothing and keeps each key's order (duplicates allowed,
//! and counted); it never holds more than `RELAY_MAX_IN_FLIGHT` rows, yet has several
//! claims in flight; a failed send is released for retry and given up as in waves.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use lifecycle::Shutdown;
use outbox::{ClaimStrategy, OutboxMessage, Relay, RelayMode};
use serde_json::json;
use sqlx::PgPool;
use test_support::{create_unique_topic, ensure_stack, eventually, eventually_with, unique_name};

/// Writes `events_per_key` events for each of `keys` keys, interleaved (event n of
/// every key, then event n+1), in one transaction; returns the event ids.
async fn enqueue_interleaved(
    pool: &PgPool,
    topic: &str,
    keys: usize,
    events_per_key: usize,
) -> Vec<String> {
    let mut tx = pool.begin().await.expect("begin");
    let mut ids = Vec::new();
    for n in 0..events_per_key {
        for k in 0..keys {
            let message = OutboxMessage::new(
                topic,
                format!("key-{k}"),
                "TestEvent",
                json!({ "key": k, "n": n }),
            );
            outbox::enqueue(&mut tx, &message).await.expect("enqueue");
            ids.push(message.id.to_string());
        }
    }
    tx.commit().await.expect("commit");
    ids
}

async fn all_sent(pool: &PgPool) -> Result<(), i64> {
    let unsent = common::count(pool, "SELECT count(*) FROM outbox WHERE state <> 'SENT'").await;
    if unsent == 0 { Ok(()) } else { Err(unsent) }
}

const KEYS: usize = 50;
const EVENTS_PER_KEY: usize = 10;

/// `kill -9` of an `outbox-relay` process in the middle of a stream, then a second
/// process after the lease. Checked against the topic, not the table: every event is
/// there, copies are counted, and each key's events arrive in the order written. A
/// copy can only follow its own original (the key's next row was never claimed while
/// this one was unmarked), so with copies dropped each key reads 0, 1, 2, …
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_relay_killed_mid_stream_loses_nothing_and_keeps_each_keys_order() {
    let (db, pool) = common::migrated_db().await;
    let topic = create_unique_topic("stream-kill", 6, 3).await;
    let ids = enqueue_interleaved(&pool, &topic, KEYS, EVENTS_PER_KEY).await;
    // The victim's lease is short, so its rows are taken over soon after the kill. The
    // survivor's is long: a survivor slower than its own lease (a loaded machine)
    // would re-claim its own rows and add copies the bound below does not count.
    let spawn = |lease_ms: u64| {
        Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
            .env("DATABASE_URL", &db.url)
            .env(
                "KAFKA_BOOTSTRAP_SERVERS",
                &ensure_stack().kafka_bootstrap_servers,
            )
            .env("RELAY_MODE", "stream")
            .env("RELAY_BATCH_SIZE", "10")
            .env("RELAY_MAX_IN_FLIGHT", "40")
            .env("RELAY_LEASE_MS", lease_ms.to_string())
            // Half the lease at most, as the relay requires.
            .env(
                "RELAY_DELIVERY_TIMEOUT_MS",
                (lease_ms / 2).min(15_000).to_string(),
            )
            .env("RELAY_POLL_MS", "100")
            .env("RUST_LOG", "warn")
            .env_remove("CRASH_AT")
            .spawn()
            .expect("start outbox-relay")
    };

    // Each key's ten events go out one after another, so the stream lasts a while:
    // kill the relay once a fifth of the events are marked.
    let mut victim = spawn(1000);
    eventually_with(
        "the relay is mid-stream",
        Duration::from_secs(30),
        Duration::from_millis(5),
        || async {
            let sent =
                common::count(&pool, "SELECT count(*) FROM outbox WHERE state = 'SENT'").await;
            if sent >= (KEYS * EVENTS_PER_KEY / 5) as i64 {
                Ok(())
            } else {
                Err(sent)
            }
        },
    )
    .await;
    victim.kill().expect("kill -9"); // `Child::kill` is SIGKILL: no shutdown, no flush
    victim.wait().expect("reap");
    let in_flight =
        common::count(&pool, "SELECT count(*) FROM outbox WHERE state = 'SENDING'").await;
    let unsent = common::count(&pool, "SELECT count(*) FROM outbox WHERE state <> 'SENT'").await;
    assert!(
        in_flight > 0 && unsent > in_flight,
        "killed mid-stream: {in_flight} rows in flight, {unsent} unsent"
    );

    let mut survivor = spawn(20_000);
    eventually("the second relay sends the rest", || all_sent(&pool)).await;
    let stopped = Command::new("kill")
        .arg("-TERM")
        .arg(survivor.id().to_string())
        .status();
    assert!(stopped.is_ok_and(|s| s.success()));
    assert!(survivor.wait().expect("wait").success(), "graceful exit");

    // Every claim after a row's first is a chance of one copy: the rows in flight at
    // the kill, claimed again after the lease, and any send that timed out on a loaded
    // machine (it may have landed after all) and was retried.
    let claimed_again = common::count(
        &pool,
        "SELECT coalesce(sum(attempts - 1), 0)::bigint FROM outbox",
    )
    .await;
    let received = common::read_topic(&topic).await;
    let (copies, per_key) = common::copies_and_order(&received);
    let duplicates: usize = copies.values().map(|c| c - 1).sum();
    eprintln!(
        "killed with {in_flight} rows in flight: {} records for {} events, {duplicates} duplicates, {claimed_again} claims after the first",
        received.len(),
        ids.len()
    );
    let expected: HashSet<String> = ids.into_iter().collect();
    let got: HashSet<String> = copies.keys().cloned().collect();
    assert_eq!(got, expected, "every event on the topic, nothing lost");
    assert!(
        claimed_again >= in_flight,
        "the rows in flight at the kill were claimed again: {claimed_again} < {in_flight}"
    );
    assert!(
        duplicates <= usize::try_from(claimed_again).expect("count"),
        "a copy only comes from a row claimed again (the producer itself adds none): {duplicates} > {claimed_again}"
    );
    for (key, ns) in per_key {
        assert!(
            ns.windows(2).all(|w| w[0] <= w[1]),
            "{key}: a copy never comes after a later event: {ns:?}"
        );
        let mut distinct = ns.clone();
        distinct.dedup();
        let written: Vec<i64> = (0..EVENTS_PER_KEY as i64).collect();
        assert_eq!(distinct, written, "{key}: in the order written: {ns:?}");
    }
}

/// Claims keep flowing while earlier sends await their acks, up to the bound: the rows
/// `SENDING` at any moment (claimed, not yet marked) exceed one claim, and never
/// exceed `max_in_flight`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_streaming_relay_has_several_claims_in_flight_and_never_more_rows_than_its_bound() {
    const MAX_IN_FLIGHT: usize = 60;
    const BATCH: i64 = 10;
    let (_db, pool) = common::migrated_db().await;
    let topic = create_unique_topic("stream-bound", 6, 3).await;
    // One event per key: no key waits for another's ack, only the bound holds rows back.
    enqueue_interleaved(&pool, &topic, 1_500, 1).await;
    let mut config = common::relay_config(
        "streamer",
        ClaimStrategy::SkipLocked,
        BATCH,
        Duration::from_secs(30),
    );
    config.mode = RelayMode::Stream;
    config.max_in_flight = MAX_IN_FLIGHT;
    let relay = Relay::new(pool.clone(), common::producer(), config);
    let stop = Shutdown::default();
    let task = tokio::spawn(relay.run(stop.clone()));

    let most = AtomicI64::new(0);
    eventually_with(
        "the relay drains the outbox",
        Duration::from_secs(60),
        Duration::from_millis(2),
        || async {
            let sending =
                common::count(&pool, "SELECT count(*) FROM outbox WHERE state = 'SENDING'").await;
            most.fetch_max(sending, Ordering::SeqCst);
            all_sent(&pool).await
        },
    )
    .await;
    stop.trigger();
    task.await.expect("relay task");
    let most = most.load(Ordering::SeqCst);
    eprintln!("at most {most} rows in flight (bound {MAX_IN_FLIGHT}, claims of {BATCH})");
    assert!(
        most <= MAX_IN_FLIGHT as i64,
        "never more than the bound in flight: {most}"
    );
    assert!(
        most > BATCH,
        "claims went on while earlier rows awaited their acks: at most {most} in flight"
    );
    let received = common::read_topic(&topic).await;
    assert_eq!(received.len(), 1_500, "each event once");
}

/// A send that fails in the stream is released for retry with the wave's policy
/// (`RELAY_MAX_ATTEMPTS`, then `FAILED`), holds its key back, and lets other keys flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_streamed_send_is_retried_then_given_up_and_holds_its_key_back() {
    const MAX_ATTEMPTS: i32 = 3;
    let (_db, pool) = common::migrated_db().await;
    let missing = unique_name("no-such-topic"); // never created
    let topic = create_unique_topic("stream-give-up", 3, 3).await;
    let doomed = common::enqueue(&pool, &missing, "order-1", json!({ "n": 1 })).await;
    let behind = common::enqueue(&pool, &topic, "order-1", json!({ "n": 2 })).await;
    let other = common::enqueue(&pool, &topic, "order-2", json!({ "n": 1 })).await;
    let mut config = common::relay_config(
        "streamer",
        ClaimStrategy::SkipLocked,
        100,
        Duration::from_secs(30),
    );
    config.mode = RelayMode::Stream;
    config.max_attempts = MAX_ATTEMPTS;
    let relay = Relay::new(pool.clone(), common::producer(), config);
    let stop = Shutdown::default();
    let task = tokio::spawn(relay.run(stop.clone()));

    let state_of = |id: uuid::Uuid| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String, i32)>("SELECT state, attempts FROM outbox WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .expect("row")
        }
    };
    eventually_with(
        "the doomed row is given up",
        Duration::from_secs(120),
        Duration::from_millis(100),
        || async {
            let state = state_of(doomed.id).await;
            if state.0 == "FAILED" {
                Ok(state)
            } else {
                Err(state)
            }
        },
    )
    .await;
    stop.trigger();
    task.await.expect("relay task");
    assert_eq!(
        state_of(doomed.id).await,
        ("FAILED".to_owned(), MAX_ATTEMPTS)
    );
    assert_eq!(state_of(other.id).await.0, "SENT", "the other key flowed");
    assert_eq!(
        state_of(behind.id).await,
        ("PENDING".to_owned(), 0),
        "its key's next event held back, never tried"
    );
    let on_topic = common::read_topic(&topic).await;
    assert_eq!(on_topic.len(), 1, "only order-2's event: {on_topic:?}");
}
