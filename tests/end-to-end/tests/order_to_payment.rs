//! The vertical slice: HTTP order → outbox → relay → Kafka → payment-service (inbox,
//! provider, payment, outbox) → relay → Kafka → order-service → PAID / PAYMENT_FAILED.
//! Both services run in this process on their own databases and on topics of their
//! own on the real 3-node cluster.

use end_to_end::start_both;
use serde_json::{Value, json};
use sqlx::PgPool;
use test_support::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_end_paid_or_failed_and_every_payment_is_applied_once() {
    let app = start_both(&[]).await;
    let http = reqwest::Client::new();

    // 12 orders; amounts ending in 13 are declined by the simulated provider.
    let mut ids = Vec::new();
    for i in 0..12_i64 {
        let amount = if i % 4 == 0 { 1013 + i * 100 } else { 1999 + i };
        let response = http
            .post(format!("{}/orders", app.orders_url))
            .json(&json!({ "customer_id": format!("c-{i}"), "amount_minor": amount, "currency": "EUR" }))
            .send()
            .await
            .expect("POST /orders");
        assert_eq!(response.status(), 201);
        let location = response.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["status"], "PENDING_PAYMENT");
        assert_eq!(
            location,
            format!("/orders/{}", body["id"].as_str().expect("id"))
        );
        ids.push((body["id"].as_str().expect("id").to_owned(), amount));
    }

    for (id, amount) in &ids {
        let expected = if amount % 100 == 13 {
            "PAYMENT_FAILED"
        } else {
            "PAID"
        };
        let order: Value = eventually(&format!("order {id} settles"), || async {
            let order: Value = http
                .get(format!("{}/orders/{id}", app.orders_url))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            if order["status"] == "PENDING_PAYMENT" {
                Err(order.to_string())
            } else {
                Ok(order)
            }
        })
        .await;
        assert_eq!(order["status"], expected, "{order}");
        // The timeline shows where the event went.
        let published = &order["timeline"][1];
        assert_eq!(published["what"], "OrderCreated published", "{order}");
        assert!(published["detail"]["offset"].as_i64().is_some(), "{order}");
    }

    // Counts, side by side: accepted == published == payments applied == outcomes applied.
    let accepted: i64 = scalar(&app.orders_db, "SELECT count(*) FROM orders").await;
    let published: i64 = scalar(
        &app.orders_db,
        "SELECT count(*) FROM outbox WHERE state = 'SENT'",
    )
    .await;
    let payments: i64 = scalar(&app.payments_db, "SELECT count(*) FROM payments").await;
    let charges: i64 = scalar(&app.payments_db, "SELECT count(*) FROM provider_charges").await;
    let outcomes: i64 = scalar(
        &app.orders_db,
        "SELECT count(*) FROM orders WHERE status <> 'PENDING_PAYMENT'",
    )
    .await;
    assert_eq!(
        (accepted, published, payments, charges, outcomes),
        (12, 12, 12, 12, 12)
    );

    // The reconciliation checker agrees, counting from Kafka itself.
    let report = reconcile::reconcile(&reconcile::Sources {
        orders_db: app.orders_db.clone(),
        payments_db: app.payments_db.clone(),
        kafka_bootstrap_servers: test_support::ensure_stack().kafka_bootstrap_servers.clone(),
        order_events_topic: app.order_events_topic.clone(),
        payment_consumer_group: app.payment_group.clone(),
    })
    .await
    .expect("reconcile");
    assert_eq!(
        report,
        reconcile::Report {
            accepted: 12,
            published_unique: 12,
            published_duplicate_copies: 0,
            not_yet_published: 0,
            delivered_unique: 12,
            duplicates_suppressed_by_inbox: 0,
            applied: 12,
            double_applied: 0,
            double_charged: 0,
            lost: 0,
            settled: 12,
        },
        "{}",
        reconcile::render(&report)
    );

    app.stop().await;
}

async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}
