//! The offset is stored only after the effect: a new group member resumes right after
//! the last applied message, and a message abandoned mid-retry comes again.

use std::time::Duration;

use test_support::eventually;

use crate::support::Fixture;

/// Waits until the handler has applied `n` messages (by the database's count).
async fn wait_applied(fx: &Fixture, n: usize) {
    eventually(&format!("{n} messages applied"), || async {
        let applied = fx.applied_seqs().await;
        if applied.len() >= n {
            Ok(())
        } else {
            Err(applied)
        }
    })
    .await;
}

/// What this does **not** show: that the offset waits for the effect. Committed before
/// the effect (`OffsetCommit::BeforeEffect`) it passes too, since nothing crashes
/// between the two. `shutdown_mid_retry_does_not_store_that_offset` below, and the
/// failure matrix's C1 row (`tools/drills/tests/matrix_subset.rs`, a crash
/// between commit and effect), are the ones that go red with the offset committed first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_resumes_after_the_last_applied_message() {
    let fx = Fixture::new().await;
    for seq in 0..5 {
        fx.publish_good(seq).await;
    }
    let first = fx.start(fx.recorder());
    wait_applied(&fx, 5).await;
    first.stop().await;

    for seq in 5..10 {
        fx.publish_good(seq).await;
    }
    let second = fx.start(fx.recorder());
    wait_applied(&fx, 10).await;
    second.stop().await;

    let applied = fx.applied_seqs().await;
    let mut distinct = applied.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        (applied.len(), distinct.len()),
        (10, 10),
        "applications vs distinct messages of 10 produced (a redelivery would show as a repeat): {applied:?}"
    );
    assert_eq!(
        applied,
        (0..10).collect::<Vec<_>>(),
        "none skipped, none twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_retry_does_not_store_that_offset() {
    let fx = Fixture::new().await;
    // seq 3 keeps failing transiently while the first instance runs.
    fx.plan_failures(3, 1_000_000).await;
    for seq in 0..6 {
        fx.publish_good(seq).await;
    }
    let first = fx.start(fx.recorder());
    eventually("seq 3 retried at least twice", || async {
        let attempts = fx.attempts(3).await;
        if attempts >= 2 { Ok(()) } else { Err(attempts) }
    })
    .await;
    first.stop().await;
    assert_eq!(
        fx.applied_seqs().await,
        [0, 1, 2],
        "the first instance stopped at seq 3"
    );
    let attempts_by_first = fx.attempts(3).await;

    // "The database is back": the next instance must get seq 3 again, not seq 4.
    fx.plan_failures(3, 0).await;
    let second = fx.start(fx.recorder());
    wait_applied(&fx, 6).await;
    second.stop().await;

    assert_eq!(
        fx.applied_seqs().await,
        [0, 1, 2, 3, 4, 5],
        "seq 3 was redelivered to the second instance and applied once; 0-2 not again"
    );
    assert_eq!(
        fx.attempts(3).await,
        attempts_by_first + 1,
        "the second instance handled seq 3 once more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_finishes_the_message_in_hand() {
    let fx = Fixture::new().await;
    let mut recorder = fx.recorder();
    // seq 2 is applied, then stays in hand for a while: the stop arrives then.
    recorder.slow_tail = Some((2, Duration::from_millis(1500)));
    for seq in 0..3 {
        fx.publish_good(seq).await;
    }
    let first = fx.start(recorder);
    wait_applied(&fx, 3).await;
    first.stop().await;

    fx.publish_good(3).await;
    let second = fx.start(fx.recorder());
    wait_applied(&fx, 4).await;
    second.stop().await;

    assert_eq!(
        fx.applied_seqs().await,
        [0, 1, 2, 3],
        "the stop let seq 2 finish and store its offset: the next instance did not apply it again"
    );
}
