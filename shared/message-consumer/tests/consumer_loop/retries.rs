//! Transient failures: the same message is retried (backoff, jitter) and the partition
//! waits for it; nothing behind it is applied first.

use message_consumer::Processed;

use crate::support::Fixture;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_on_the_same_message_and_later_ones_wait() {
    let fx = Fixture::new().await;
    // seq 2 fails three times ("database down"), then succeeds.
    fx.plan_failures(2, 3).await;
    let mut offsets = Vec::new();
    for seq in 0..6 {
        offsets.push(fx.publish_good(seq).await);
    }

    let metrics = telemetry::Metrics::new();
    let consumer = fx.consumer(fx.recorder()).with_metrics(&metrics);
    let outcomes = fx.drive(&consumer, offsets.len()).await;

    let processed: Vec<i64> = outcomes
        .iter()
        .map(|o| match o {
            Processed::Applied { offset, .. } => *offset,
            Processed::DeadLettered { .. } => {
                panic!("a transient failure was dead-lettered: {o:?}")
            }
            Processed::Duplicate { .. } => panic!("nothing here is delivered twice: {o:?}"),
        })
        .collect();
    assert_eq!(
        processed, offsets,
        "one outcome per message, in offset order"
    );
    assert_eq!(
        fx.applied_seqs().await,
        [0, 1, 2, 3, 4, 5],
        "applied in partition order: 3, 4, 5 waited for the retried 2"
    );
    let mut attempts = Vec::new();
    for seq in 0..6 {
        attempts.push(fx.attempts(seq).await);
    }
    assert_eq!(
        attempts,
        [1, 1, 4, 1, 1, 1],
        "attempts per seq: seq 2 failed 3 times and was retried on the same message"
    );

    // The loop counted it: six received, six applied, three retries, in process and
    // in the service's metrics.
    let counts = consumer.counters().counts();
    assert_eq!(
        (
            counts.consumed,
            counts.applied,
            counts.retried,
            counts.dead_lettered
        ),
        (6, 6, 3, 0)
    );
    let text = metrics.render();
    for (name, value) in [
        ("consumer_messages_consumed_total", 6),
        ("consumer_messages_applied_total", 6),
        ("consumer_retries_total", 3),
        ("consumer_processing_duration_seconds_count", 6),
    ] {
        let line = format!("{name}{{topic=\"{}\"}} {value}", fx.topic);
        assert!(text.contains(&line), "{line} missing:\n{text}");
    }
}
