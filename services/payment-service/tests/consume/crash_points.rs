//! Crash points C1 and C2 for real: the `payment-service` binary aborts there
//! (`CRASH_AT`, like `kill -9`: no rollback message, no offset commit, no cleanup), and
//! a second process takes over the same consumer group.
//!
//! - C1, inside the transaction: the inbox row, the payment and the outcome event roll
//!   back together. The provider's charge (outside the transaction) stays; the
//!   redelivery charges again with the same idempotency key and gets the first answer.
//!   One payment, one charge, and the inbox never saw a duplicate.
//! - C2, after the commit, before the offset: the effect is durable, the offset is not.
//!   The redelivery is a duplicate, and the inbox suppresses it. One payment.
//!
//! (docs/en/04-consume.md, docs/en/01-overview.md's crash-point table.)

use std::process::{Child, Command};
use std::time::Duration;

use uuid::Uuid;

use crate::common::{APPLIED_ONCE, Counts, Fixture};

fn spawn_service(fixture: &Fixture, crash_at: Option<&str>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_payment-service"));
    command
        .envs(&fixture.env)
        .env("RUST_LOG", "warn")
        .env_remove("CRASH_AT");
    if let Some(point) = crash_at {
        command.env("CRASH_AT", point);
    }
    command.spawn().expect("start payment-service")
}

/// Waits (bounded) for the process to exit on its own and returns whether it failed.
async fn aborted(mut child: Child) -> bool {
    let waited = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::task::spawn_blocking(move || {
            let status = child.wait();
            (child, status)
        }),
    )
    .await;
    match waited {
        Ok(joined) => {
            let (_, status) = joined.expect("join");
            !status.expect("wait").success()
        }
        Err(_) => panic!("the process did not reach its crash point within 90s"),
    }
}

/// SIGTERM, then waits for the graceful stop (bounded; SIGKILL after 60s).
async fn terminate(mut child: Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let stopped = tokio::task::spawn_blocking(move || {
        for _ in 0..600 {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    })
    .await
    .expect("join");
    assert!(stopped, "payment-service stops within 60s of SIGTERM");
}

/// Publishes one order, lets a process crash at `point` on it, checks what the crash
/// left, restarts a healthy process and returns what the order ended with.
async fn crash_then_recover(point: &str, after_crash: Counts) -> Counts {
    // The fast path off: with it on, the handler remembers the id in Redis just before
    // C2, and Redis would catch the copy first. Off, the test shows the defence that
    // does not depend on Redis: the inbox row committed with the payment.
    let fixture = Fixture::create(&[("DEDUP_FAST_PATH", "false")]).await;
    let order_id = Uuid::now_v7();
    let event_id = Uuid::now_v7();
    fixture.publish_order_created(event_id, order_id, 1).await;

    let crashing = spawn_service(&fixture, Some(point));
    assert!(aborted(crashing).await, "{point}: the process aborted");
    assert_eq!(
        fixture.counts(order_id, &[event_id]).await,
        after_crash,
        "{point}: what the crash left in the database"
    );

    let healthy = spawn_service(&fixture, None);
    fixture.publish_sentinel_and_wait().await;
    terminate(healthy).await;
    fixture.counts(order_id, &[event_id]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_inside_the_transaction_rolls_back_and_the_redelivery_applies_once() {
    let nothing_but_the_charge = Counts {
        payments: 0,
        outcome_events: 0,
        inbox_rows: 0,
        inbox_duplicates: 0,
        provider_charges: 1,
        provider_calls: 1,
    };
    let end = crash_then_recover("C1", nothing_but_the_charge).await;
    assert_eq!(
        end,
        Counts {
            payments: 1,
            outcome_events: 1,
            inbox_rows: 1,
            // The inbox row rolled back with the payment: the redelivery is, for the
            // inbox, the first delivery.
            inbox_duplicates: 0,
            // Charged twice with one idempotency key: one charge at the provider.
            provider_charges: 1,
            provider_calls: 2,
        },
        "C1: one payment after the crash and the redelivery"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_commit_redelivers_and_the_inbox_suppresses_it() {
    let end = crash_then_recover("C2", APPLIED_ONCE).await;
    assert_eq!(
        end,
        Counts {
            // The redelivered copy was recognised by the inbox: nothing applied twice,
            // and the provider was not called again.
            inbox_duplicates: 1,
            ..APPLIED_ONCE
        },
        "C2: the offset was never committed, so the message came again"
    );
}
