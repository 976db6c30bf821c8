//! The relay's give-up state: a row whose sends keep failing for a permanent reason
//! (here: its topic does not exist, and the cluster does not auto-create topics) becomes
//! `FAILED` after `RELAY_MAX_ATTEMPTS`, is counted, holds back the later events of its
//! key, and comes back with `outbox::retry_failed` once the topic exists. A transient
//! failure (Kafka unreachable) is never given up.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use outbox::{Relay, RelayConfig, RelayReport};
use serde_json::json;
use sqlx::PgPool;
use test_support::{create_unique_topic, ensure_stack, eventually_with, unique_name};

const MAX_ATTEMPTS: i32 = 3;

fn relay(pool: &PgPool, id: &str) -> Relay {
    let producer =
        kafka_config::ProducerSettings::reliable(&ensure_stack().kafka_bootstrap_servers)
            .client_config()
            .create()
            .expect("producer");
    let mut config = RelayConfig::new(id);
    config.max_attempts = MAX_ATTEMPTS;
    Relay::new(pool.clone(), producer, config)
}

async fn state_of(pool: &PgPool, id: uuid::Uuid) -> (String, i32, Option<String>) {
    sqlx::query_as("SELECT state, attempts, last_error FROM outbox WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("row")
}

/// Runs passes (the backoff makes some of them empty) until `done` holds; returns the
/// passes' reports added up.
async fn passes_until(
    relay: &Relay,
    what: &str,
    done: impl Fn(&RelayReport) -> bool,
) -> RelayReport {
    let total = Mutex::new(RelayReport::default());
    eventually_with(
        what,
        Duration::from_secs(120),
        Duration::from_millis(100),
        || async {
            let r = relay.relay_once().await.map_err(|e| e.to_string())?;
            let mut t = total.lock().expect("lock");
            t.claimed += r.claimed;
            t.sent += r.sent;
            t.failed += r.failed;
            t.gave_up += r.gave_up;
            if done(&t) {
                Ok(())
            } else {
                Err(format!("{t:?}"))
            }
        },
    )
    .await;
    total.into_inner().expect("lock")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_keeps_failing_is_given_up_holds_its_key_and_can_be_retried() {
    let (_db, pool) = common::migrated_db().await;
    let missing = unique_name("no-such-topic"); // never created (yet)
    let topic = create_unique_topic("give-up", 3, 3).await;
    let doomed = common::enqueue(&pool, &missing, "order-1", json!({ "n": 1 })).await;
    let behind = common::enqueue(&pool, &topic, "order-1", json!({ "n": 2 })).await;
    let other = common::enqueue(&pool, &topic, "order-2", json!({ "n": 1 })).await;

    let first = relay(&pool, "relay-1");
    let report = passes_until(&first, "the doomed row is given up", |t| t.gave_up > 0).await;
    assert_eq!(report.gave_up, 1, "{report:?}");
    assert_eq!(
        report.failed,
        MAX_ATTEMPTS as usize - 1,
        "failed and retried until the last attempt: {report:?}"
    );
    assert_eq!(report.sent, 1, "the other key is not held back: {report:?}");

    let (state, attempts, last_error) = state_of(&pool, doomed.id).await;
    assert_eq!(state, "FAILED");
    assert_eq!(attempts, MAX_ATTEMPTS);
    assert!(
        last_error.is_some_and(|e| !e.is_empty()),
        "the reason is kept"
    );
    let failed = outbox::failed_rows(&pool).await.expect("failed rows");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].id, doomed.id);
    assert_eq!(failed[0].message_key, "order-1");
    assert_eq!(state_of(&pool, other.id).await.0, "SENT");

    // FAILED is never claimed again, and the later event of its key waits behind it:
    // publishing order-1's second event without its first would reorder its history.
    let idle = first.relay_once().await.expect("pass");
    assert_eq!(idle, RelayReport::default(), "nothing claimable");
    let (state, attempts, _) = state_of(&pool, behind.id).await;
    assert_eq!(
        (state.as_str(), attempts),
        ("PENDING", 0),
        "held back, never tried"
    );
    assert_eq!(
        common::read_topic(&topic).await.len(),
        1,
        "only order-2's event"
    );

    // The operator fixes the cause (creates the topic) and releases the row.
    kafka_config::create_topic(&ensure_stack().kafka_bootstrap_servers, &missing, 3, 3)
        .await
        .expect("create the missing topic");
    assert!(outbox::retry_failed(&pool, doomed.id).await.expect("retry"));
    assert!(
        !outbox::retry_failed(&pool, doomed.id).await.expect("retry"),
        "only a FAILED row is released"
    );
    assert!(
        !outbox::retry_failed(&pool, other.id).await.expect("retry"),
        "a SENT row is not touched"
    );
    let second = relay(&pool, "relay-2"); // a fresh producer: new metadata
    let report = passes_until(&second, "both order-1 events sent", |t| t.sent == 2).await;
    assert_eq!(report.gave_up, 0, "{report:?}");
    let unsent = common::count(&pool, "SELECT count(*) FROM outbox WHERE state <> 'SENT'").await;
    assert_eq!(unsent, 0);
    let on_missing = common::read_topic(&missing).await;
    assert_eq!(on_missing.len(), 1, "the released event, once");
    assert_eq!(on_missing[0].event_id, doomed.id.to_string());
    let on_topic = common::read_topic(&topic).await;
    assert_eq!(
        on_topic.len(),
        2,
        "order-2's event and then order-1's second"
    );
}

/// Kafka unreachable is transient: however many attempts fail, the row is never given
/// up, and it goes out once Kafka answers. (Before, every failure counted toward
/// `RELAY_MAX_ATTEMPTS`, and a long outage left every row `FAILED`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_is_never_given_up_while_kafka_is_unreachable() {
    let (_db, pool) = common::migrated_db().await;
    let topic = create_unique_topic("outage", 3, 3).await;
    let event = common::enqueue(&pool, &topic, "order-1", json!({ "n": 1 })).await;

    // "Kafka is down": a producer pointed at a port nobody listens on, its sends timing
    // out after 300 ms.
    let dead = format!("127.0.0.1:{}", test_support::unused_port());
    let mut config = RelayConfig::new("cut-off");
    config.max_attempts = MAX_ATTEMPTS;
    config.delivery_timeout = Duration::from_millis(300);
    let producer = config
        .producer_settings(&dead)
        .client_config()
        .create()
        .expect("producer");
    let cut_off = Relay::new(pool.clone(), producer, config);
    let report = passes_until(&cut_off, "twice the give-up count failed", |t| {
        t.failed >= 2 * MAX_ATTEMPTS as usize
    })
    .await;
    assert_eq!(report.gave_up, 0, "{report:?}");
    let (state, attempts, last_error) = state_of(&pool, event.id).await;
    assert_eq!(state, "PENDING", "waiting for its next try, not FAILED");
    assert!(attempts >= 2 * MAX_ATTEMPTS, "{attempts} attempts");
    assert!(
        last_error.is_some_and(|e| e.contains("timed out")),
        "the last error is kept"
    );

    // Kafka answers again: the row goes out with no operator.
    sqlx::query("UPDATE outbox SET available_at = now()")
        .execute(&pool)
        .await
        .expect("skip the backoff");
    let back = relay(&pool, "back");
    let report = passes_until(&back, "the row is sent", |t| t.sent == 1).await;
    assert_eq!(report.gave_up, 0, "{report:?}");
    let received = common::read_topic(&topic).await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].event_id, event.id.to_string());
}

/// The operator's selections: a key's FAILED rows, then all of them.
#[tokio::test]
async fn failed_rows_are_put_back_by_key_or_all() {
    let (_db, pool) = common::migrated_db().await;
    let mut ids = Vec::new();
    for key in ["a", "a", "b", "c"] {
        ids.push(common::enqueue(&pool, "t", key, json!({})).await.id);
    }
    sqlx::query("UPDATE outbox SET state = 'FAILED', attempts = 20")
        .execute(&pool)
        .await
        .expect("give them up");
    let back = |which| outbox::put_back_failed(&pool, which);
    assert_eq!(back(outbox::FailedRows::Key("a")).await.expect("key"), 2);
    assert_eq!(state_of(&pool, ids[0]).await.0, "PENDING");
    assert_eq!(state_of(&pool, ids[2]).await.0, "FAILED", "key b untouched");
    assert_eq!(back(outbox::FailedRows::All).await.expect("all"), 2);
    let failed = outbox::failed_rows(&pool).await.expect("rows");
    assert!(failed.is_empty(), "{failed:?}");
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM outbox")
        .fetch_all(&pool)
        .await
        .expect("attempts");
    assert!(
        attempts.iter().all(|a| *a == 0),
        "fresh tries: {attempts:?}"
    );
}
