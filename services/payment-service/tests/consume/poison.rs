//! A poison `OrderCreated` (a schema version this service does not read) goes to
//! `<topic>.dlq` with the reason and its origin, and the orders behind it are paid.

use kafka_config::headers;
use message_consumer::EventHeaders;
use uuid::Uuid;

use crate::common::{Counts, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_order_created_is_dead_lettered_and_the_service_goes_on() {
    let svc = TestApp::spawn(&[]).await;
    let poison_order = Uuid::now_v7();
    let poison_event = Uuid::now_v7();
    let offset = svc
        .publish_order_created(poison_event, poison_order, 2)
        .await;
    // Behind it on the same partition: must not be held up.
    svc.publish_sentinel_and_wait().await;

    let letters = svc.read_dead_letters(1).await;
    let letter = &letters[0];
    let reason = letter.header(headers::DLQ_REASON).unwrap_or_default();
    assert!(reason.contains("unknown schema_version 2"), "{reason:?}");
    assert_eq!(
        letter.header(headers::DLQ_ORIGINAL_TOPIC),
        Some(svc.order_topic.as_str())
    );
    assert_eq!(letter.header(headers::DLQ_ORIGINAL_PARTITION), Some("0"));
    assert_eq!(
        letter.header(headers::DLQ_ORIGINAL_OFFSET),
        Some(offset.to_string().as_str())
    );
    assert_eq!(
        letter.header(headers::DLQ_CONSUMER_GROUP),
        Some(svc.group.as_str())
    );
    assert_eq!(
        letter.event_id().ok(),
        Some(poison_event),
        "the original headers travel with it"
    );

    assert_eq!(
        svc.counts(poison_order, &[poison_event]).await,
        Counts {
            payments: 0,
            outcome_events: 0,
            inbox_rows: 0,
            inbox_duplicates: 0,
            provider_charges: 0,
            provider_calls: 0,
        },
        "a dead-lettered event leaves nothing behind"
    );
    svc.stop().await;
}
