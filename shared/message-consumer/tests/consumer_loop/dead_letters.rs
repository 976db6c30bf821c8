//! Permanent failures: a poison message goes to `<topic>.dlq` with the reason and its
//! origin in headers, and the partition moves on to the good messages behind it.

use std::collections::HashMap;

use kafka_config::headers;
use message_consumer::Processed;
use uuid::Uuid;

use crate::support::Fixture;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_with_their_origin_and_good_ones_are_applied() {
    let fx = Fixture::new().await;
    let id = Uuid::new_v4().to_string();
    let event = [
        (headers::EVENT_ID, id.as_str()),
        (headers::EVENT_TYPE, "Test"),
    ];

    // Good and poison interleaved on one partition: each poison message sits in front
    // of a good one that must not be held up by it.
    let mut poison: HashMap<i64, (&str, Vec<u8>)> = HashMap::new();
    fx.publish_good(0).await;
    let payload = b"{\"schema_version\":1,\"seq\":".to_vec();
    let offset = fx.publish(&event, &payload).await;
    poison.insert(offset, ("malformed JSON", payload));
    fx.publish_good(1).await;
    let payload = br#"{"schema_version":1,"seq":98}"#.to_vec();
    let offset = fx.publish(&[(headers::EVENT_TYPE, "Test")], &payload).await;
    poison.insert(offset, ("missing event-id header", payload));
    fx.publish_good(2).await;
    let payload = br#"{"schema_version":2,"seq":99}"#.to_vec();
    let offset = fx.publish(&event, &payload).await;
    poison.insert(offset, ("unknown schema_version Some(2)", payload));
    fx.publish_good(3).await;
    let produced = 7;

    let consumer = fx.consumer(fx.recorder());
    let outcomes = fx.drive(&consumer, produced).await;

    let dead_lettered: Vec<&Processed> = outcomes
        .iter()
        .filter(|o| matches!(o, Processed::DeadLettered { .. }))
        .collect();
    let applied = fx.applied_seqs().await;
    assert_eq!(
        (
            applied.len(),
            dead_lettered.len(),
            applied.len() + dead_lettered.len()
        ),
        (4, 3, produced),
        "(good applied, dead-lettered, total) vs produced {produced}: nothing lost; {outcomes:?}"
    );
    assert_eq!(
        applied,
        [0, 1, 2, 3],
        "every good message applied once, in order"
    );

    // The dead-letter topic itself, read back: the original bytes, why, and from where.
    for letter in fx.read_dead_letters(poison.len()).await {
        let original_offset: i64 = letter
            .header(headers::DLQ_ORIGINAL_OFFSET)
            .and_then(|o| o.parse().ok())
            .expect("dlq-original-offset header");
        let (reason, payload) = poison
            .remove(&original_offset)
            .unwrap_or_else(|| panic!("unexpected dead letter from offset {original_offset}"));
        let got_reason = letter.header(headers::DLQ_REASON).unwrap_or_default();
        assert!(
            got_reason.contains(reason),
            "offset {original_offset}: reason {got_reason:?} should say {reason:?}"
        );
        assert_eq!(
            letter.header(headers::DLQ_ORIGINAL_TOPIC),
            Some(fx.topic.as_str())
        );
        assert_eq!(letter.header(headers::DLQ_ORIGINAL_PARTITION), Some("0"));
        assert_eq!(
            letter.header(headers::DLQ_CONSUMER_GROUP),
            Some(fx.group.as_str())
        );
        assert_eq!(
            letter.payload.as_deref(),
            Some(payload.as_slice()),
            "original payload kept"
        );
    }
    assert!(
        poison.is_empty(),
        "poison messages never dead-lettered: {poison:?}"
    );
}
