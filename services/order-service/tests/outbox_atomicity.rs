//! The order and its `OrderCreated` event commit together or not at all
//! (docs/en/02-produce.md, "The order and its event in one transaction"), and the
//! published record carries what consumers rely on: key, headers, payload.

use serde_json::Value;
use test_support::eventually;

mod common;

use common::{ORDER, TestApp};

/// order-service on its own database, on port 0.
type Service = TestApp;

async fn start(relay_enabled: bool) -> Service {
    TestApp::spawn(&[
        ("RELAY_ENABLED", &relay_enabled.to_string()),
        ("RELAY_POLL_MS", "100"),
    ])
    .await
}

impl Service {
    async fn post_order(&self) -> reqwest::Response {
        self.http
            .post(format!("{}/orders", self.base))
            .header("content-type", "application/json")
            .body(ORDER)
            .send()
            .await
            .expect("POST /orders")
    }

    async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect(sql)
    }

    async fn rows(&self) -> (i64, i64) {
        (
            self.count("SELECT count(*) FROM orders").await,
            self.count("SELECT count(*) FROM outbox").await,
        )
    }
}

#[tokio::test]
async fn when_the_outbox_insert_fails_no_order_exists_either() {
    let service = start(false).await;
    // The outbox refuses every row, after the order's INSERT already ran in the same
    // transaction.
    sqlx::raw_sql(
        r"CREATE FUNCTION refuse_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN RAISE EXCEPTION 'outbox refused by the test'; END $$;
          CREATE TRIGGER refuse_outbox_trg BEFORE INSERT ON outbox
              FOR EACH ROW EXECUTE FUNCTION refuse_outbox();",
    )
    .execute(&service.pool)
    .await
    .expect("install the trigger");

    let response = service.post_order().await;
    let status = response.status();
    assert!(status.is_server_error(), "{status}");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let problem: Value = response.json().await.expect("problem body");
    assert_eq!(problem["status"], status.as_u16(), "{problem}");
    assert_eq!(
        service.rows().await,
        (0, 0),
        "neither the order nor its event"
    );

    sqlx::raw_sql("DROP TRIGGER refuse_outbox_trg ON outbox")
        .execute(&service.pool)
        .await
        .expect("drop the trigger");
    let response = service.post_order().await;
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    assert_eq!(
        service.rows().await,
        (1, 1),
        "exactly one order and one event"
    );
    service.stop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_record_carries_key_headers_and_the_order() {
    let service = start(true).await;
    let response = service.post_order().await;
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let order: Value = response.json().await.expect("order body");
    let order_id = order["id"].as_str().expect("id").to_owned();
    eventually("the relay sends the event", || async {
        let sent = service
            .count("SELECT count(*) FROM outbox WHERE state = 'SENT'")
            .await;
        if sent == 1 { Ok(()) } else { Err(sent) }
    })
    .await;
    let event_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM outbox")
        .fetch_one(&service.pool)
        .await
        .expect("the outbox row");

    let records = test_support::read_topic(&service.order_events_topic).await;
    assert_eq!(records.len(), 1, "one order, one record");
    let record = &records[0];
    assert_eq!(
        record.key_str(),
        Some(order_id.as_str()),
        "keyed by the order id"
    );
    assert_eq!(
        record.header("event-id"),
        Some(event_id.to_string().as_str())
    );
    assert_eq!(record.header("event-type"), Some("OrderCreated"));
    assert_eq!(record.header("schema-version"), Some("1"));
    let payload: Value =
        serde_json::from_slice(record.payload.as_deref().unwrap_or_default()).expect("JSON");
    assert_eq!(payload["schema_version"], 1, "{payload}");
    assert_eq!(payload["event_id"], event_id.to_string(), "{payload}");
    assert_eq!(payload["order_id"], order["id"], "{payload}");
    assert_eq!(payload["customer_id"], order["customer_id"], "{payload}");
    assert_eq!(payload["amount_minor"], order["amount_minor"], "{payload}");
    assert_eq!(payload["currency"], order["currency"], "{payload}");
    let instant = |v: &Value| {
        v.as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    };
    assert_eq!(
        instant(&payload["created_at"]),
        instant(&order["created_at"]),
        "{payload} vs {order}"
    );
    assert!(instant(&payload["created_at"]).is_some(), "{payload}");
    service.stop.stop().await;
}
