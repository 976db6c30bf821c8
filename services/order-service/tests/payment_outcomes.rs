//! The guarded state machine for payment outcomes: `PENDING_PAYMENT → PAID |
//! PAYMENT_FAILED` once; a repeated event is skipped by the inbox, a late or
//! contradicting one cannot move a settled order, an outcome for an unknown order is a
//! permanent error (dead-lettered by the consumer loop).

use message_consumer::{DedupLayer, HandleError, Handled, Handler, ReceivedMessage};
use order_service::PaymentResults;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

mod common;

use common::TestApp;

fn outcome(event_type: &str, order_id: Uuid, event_id: Uuid) -> ReceivedMessage {
    let payload = json!({
        "schema_version": 1, "order_id": order_id, "payment_id": Uuid::now_v7(),
        "reason": (event_type == "PaymentFailed").then_some("declined"),
    });
    ReceivedMessage {
        topic: "payment-events".into(),
        partition: 0,
        offset: 0,
        key: Some(order_id.to_string().into_bytes()),
        payload: Some(payload.to_string().into_bytes()),
        headers: vec![
            ("event-id".into(), Some(event_id.to_string().into_bytes())),
            ("event-type".into(), Some(event_type.as_bytes().to_vec())),
        ],
    }
}

async fn status(pool: &PgPool, order_id: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(pool)
        .await
        .expect("order status")
}

#[tokio::test]
async fn an_order_settles_once_and_a_late_or_repeated_outcome_cannot_move_it() {
    // The App migrates the database (orders, outbox, inbox); the relay is not needed.
    let app = TestApp::spawn(&[("RELAY_ENABLED", "false")]).await;
    let pool = app.pool.clone();
    let order_id = Uuid::now_v7();
    sqlx::query("INSERT INTO orders (id, customer_id, amount_minor, currency) VALUES ($1, 'c-1', 1999, 'EUR')")
        .bind(order_id)
        .execute(&pool)
        .await
        .expect("order");
    let handler = PaymentResults {
        pool: pool.clone(),
        consumer_group: "order-service".into(),
    };

    let succeeded = outcome("PaymentSucceeded", order_id, Uuid::now_v7());
    let first = handler
        .handle(&succeeded)
        .await
        .expect("first outcome applies");
    assert_eq!(first, Handled::Applied);
    assert_eq!(status(&pool, order_id).await, "PAID");

    // The same event again: the inbox skips it and counts it.
    let repeat = handler
        .handle(&succeeded)
        .await
        .expect("a repeat is not an error");
    assert_eq!(repeat, Handled::Duplicate(DedupLayer::Inbox));
    let duplicates: i32 = sqlx::query_scalar("SELECT duplicate_deliveries FROM inbox")
        .fetch_one(&pool)
        .await
        .expect("inbox row");
    assert_eq!(duplicates, 1);

    // A late, contradicting outcome with a new event id: the state machine refuses to
    // move a settled order.
    let late = handler
        .handle(&outcome("PaymentFailed", order_id, Uuid::now_v7()))
        .await
        .expect("a late outcome is not an error");
    assert_eq!(late, Handled::Duplicate(DedupLayer::BusinessKey));
    assert_eq!(
        status(&pool, order_id).await,
        "PAID",
        "a settled order stays settled"
    );

    // No such order: permanent (dead-lettered by the loop), nothing recorded.
    let unknown = handler
        .handle(&outcome("PaymentSucceeded", Uuid::now_v7(), Uuid::now_v7()))
        .await;
    assert!(
        matches!(unknown, Err(HandleError::Permanent(_))),
        "{unknown:?}"
    );
    let inbox_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(
        inbox_rows, 2,
        "the unknown order's outcome left no inbox row"
    );
    app.stop.stop().await;
}
