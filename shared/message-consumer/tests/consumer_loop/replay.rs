//! Dead-letter replay with one command: a letter rejected by yesterday's handler is
//! replayed after the fix and applied once; replayed again, the inbox suppresses it.

use std::process::Command;

use kafka_config::headers;
use message_consumer::{EventHeaders, MessageConsumer, Processed};

use crate::inbox_recorder::{InboxRecorder, accept_schema, install, tally};
use crate::support::Fixture;

/// Runs the `dlq-replay` binary against the fixture's topic; returns its stdout.
fn dlq_replay(fx: &Fixture, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_dlq-replay"))
        .args(["--topic", &fx.topic, "--bootstrap", &fx.bootstrap])
        .args(args)
        .output()
        .expect("run dlq-replay");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "dlq-replay {args:?}: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("dlq-replay {args:?}:\n{stdout}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_dead_letter_is_applied_once_and_a_second_replay_is_suppressed() {
    let fx = Fixture::new().await;
    install(&fx.pool).await;
    let consumer = MessageConsumer::new(
        fx.settings(),
        InboxRecorder {
            pool: fx.pool.clone(),
            group: fx.group.clone(),
            member: "A",
            work: std::time::Duration::ZERO,
        },
    )
    .expect("consumer");

    // Schema version 2 arrives before the handler reads it: dead-lettered. Another
    // dead letter (for another event) stays where it is: `--event-id` picks one.
    let poison = fx.publish_keyed(7, 2).await;
    let other = fx.publish_keyed(8, 2).await;
    fx.publish_keyed(9, 1).await;
    let outcomes = fx.drive_with(&consumer, 3).await;
    let dead_lettered = outcomes
        .iter()
        .filter(|o| matches!(o, Processed::DeadLettered { .. }))
        .count();
    assert_eq!(dead_lettered, 2, "{outcomes:?}");

    let listed = dlq_replay(&fx, &["--list", "--event-id", &poison.to_string()]);
    assert!(
        listed.starts_with("1 dead letter(s)") && listed.contains("unknown schema_version 2"),
        "--list shows the one letter with its reason:\n{listed}"
    );
    assert_eq!(tally(&fx.pool, &fx.group).await.applied, 1, "only seq 9");

    // The fix: the handler now reads version 2. One command sends the letter back.
    accept_schema(&fx.pool, 2).await;
    let replayed = dlq_replay(&fx, &["--replay", "--event-id", &poison.to_string()]);
    assert!(
        replayed.contains(&format!("replayed to {}[0]@", fx.topic)),
        "{replayed}"
    );
    let outcomes = fx.drive_with(&consumer, 1).await;
    assert!(
        matches!(outcomes[..], [Processed::Applied { .. }]),
        "{outcomes:?}"
    );

    // On the topic the copy is the original again: same event id, no dlq-* headers.
    let on_topic = test_support::read_topic(&fx.topic).await;
    let copy = on_topic.last().expect("the replayed copy");
    assert_eq!(copy.event_id().ok(), Some(poison));
    let dlq_headers: Vec<&String> = copy
        .headers
        .iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("dlq-"))
        .collect();
    assert!(
        dlq_headers.is_empty(),
        "no dlq-* header travels back: {dlq_headers:?}"
    );
    assert_eq!(copy.header(headers::EVENT_TYPE), Some("Test"));

    // Replayed again (by mistake, or by a second operator): delivered, not applied.
    dlq_replay(&fx, &["--replay", "--event-id", &poison.to_string()]);
    fx.drive_with(&consumer, 1).await;

    let t = tally(&fx.pool, &fx.group).await;
    let applied_7: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox_applied WHERE seq = 7")
        .fetch_one(&fx.pool)
        .await
        .expect("count seq 7");
    assert_eq!(
        (applied_7, t.applied, t.duplicates_suppressed),
        (1, 2, 1),
        "the poison event replayed twice: applied {applied_7} time(s); the second replay \
         suppressed by the inbox ({} duplicate(s)); the other letter ({other}) not replayed; \
         delivered {}, applied {} in all",
        t.duplicates_suppressed,
        t.delivered,
        t.applied,
    );
}
