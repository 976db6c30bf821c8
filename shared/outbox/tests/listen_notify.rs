//! LISTEN/NOTIFY is what makes the relay prompt; the poll is only the safety net for a
//! notification that was lost (a notification is not durable: one sent while the relay's
//! listening connection is down is gone). With the poll set to 30 s, an event must still
//! be published within a few seconds — only the trigger's NOTIFY and the relay's LISTEN
//! can do that. Without LISTEN it waits for the poll (docs/en/02-produce.md).

use std::time::{Duration, Instant};

use lifecycle::Shutdown;
use outbox::ClaimStrategy;
use sqlx::PgPool;
use test_support::{create_unique_topic, eventually_with};

mod common;

/// Far longer than the bound below: an event published within the bound was not
/// found by the poll.
const POLL: Duration = Duration::from_secs(30);
const PROMPT: Duration = Duration::from_secs(5);

/// Starts a relay with a 30 s poll, enqueues one event once the relay is up, and
/// returns how long the row took to be SENT (`None`: not within [`PROMPT`]).
async fn time_to_sent(listen_notify: bool) -> Option<Duration> {
    let (_db, pool) = common::migrated_db().await;
    let topic = create_unique_topic("listen-notify", 1, 3).await;
    let mut config = common::relay_config("notify", ClaimStrategy::SkipLocked, 100, POLL);
    config.poll_interval = POLL;
    config.lease = 2 * POLL;
    config.listen_notify = listen_notify;
    let relay = outbox::Relay::new(pool.clone(), common::producer(), config);
    let stop = Shutdown::default();
    let task = tokio::spawn(relay.run(stop.clone()));
    // Let the relay LISTEN (when it does) and finish its first pass: a probe row,
    // SENT by that pass (or by its notification). What follows then arrives between two
    // polls, 30 s apart.
    wait_until_listening(&pool, listen_notify).await;
    common::enqueue(&pool, &topic, "probe", serde_json::json!({ "n": 0 })).await;
    eventually_with(
        "the probe row SENT by the first pass",
        Duration::from_secs(45),
        Duration::from_millis(50),
        || async {
            let sent =
                common::count(&pool, "SELECT count(*) FROM outbox WHERE state = 'SENT'").await;
            if sent == 1 { Ok(()) } else { Err(sent) }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    common::enqueue(&pool, &topic, "k", serde_json::json!({ "n": 1 })).await;
    let enqueued = Instant::now();
    let mut sent = None;
    while enqueued.elapsed() < PROMPT {
        if common::count(&pool, "SELECT count(*) FROM outbox WHERE state = 'SENT'").await == 2 {
            sent = Some(enqueued.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.trigger();
    task.await.expect("relay task");
    sent
}

async fn wait_until_listening(pool: &PgPool, listen_notify: bool) {
    if !listen_notify {
        return;
    }
    eventually_with(
        "the relay LISTENs",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
            )
            .fetch_one(pool)
            .await
            .map_err(|e| e.to_string())?;
            if n > 0 { Ok(()) } else { Err(n.to_string()) }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_30_s_poll_an_event_is_published_within_seconds_only_because_of_notify() {
    let with_notify = time_to_sent(true).await;
    let without = time_to_sent(false).await;
    eprintln!("poll {POLL:?}: SENT after {with_notify:?} with LISTEN, {without:?} without");
    assert!(
        with_notify.is_some(),
        "with LISTEN/NOTIFY the row must be SENT within {PROMPT:?} although the poll is {POLL:?}"
    );
    assert!(
        without.is_none(),
        "without LISTEN the row waits for the {POLL:?} poll, yet it was SENT after {without:?}: \
         something else woke the relay, and the first case proves nothing"
    );
}
