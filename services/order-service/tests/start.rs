//! order-service starts on its own database, answers health and readiness, serves an
//! OpenAPI document that matches what the API really does, and refuses bad
//! configuration with one clear line.

use serde_json::{Value, json};

mod common;

use common::TestApp;

/// The default environment: the relay and every loop on.
const ENV: &[(&str, &str)] = &[];

#[tokio::test]
async fn starts_migrates_and_is_ready() {
    let app = TestApp::spawn(ENV).await;
    let (addr, stop) = (app.addr, app.stop);
    test_support::assert_live_and_ready(addr).await;
    // The service ran its own migrations into its own database.
    let tables = test_support::table_names(&app.pool).await;
    assert!(tables.contains(&"orders".to_owned()), "{tables:?}");
    stop.stop().await;
}

/// The members a schema of the document says are required.
fn required(doc: &Value, schema: &str) -> Vec<String> {
    doc["components"]["schemas"][schema]["required"]
        .as_array()
        .unwrap_or_else(|| panic!("{schema}.required in the document"))
        .iter()
        .map(|v| v.as_str().expect("a name").to_owned())
        .collect()
}

fn assert_has_members(body: &Value, members: &[String], what: &str) {
    for member in members {
        assert!(
            body.get(member).is_some(),
            "{what}: the document requires `{member}`, the answer lacks it: {body}"
        );
    }
}

#[tokio::test]
async fn the_openapi_document_describes_the_api_it_serves() {
    let app = TestApp::spawn(ENV).await;
    let (addr, stop) = (app.addr, app.stop);
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move { http.get(path).send().await.expect("GET") }
    };

    let doc: Value = get(format!("{base}/openapi.json"))
        .await
        .json()
        .await
        .expect("JSON");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    // Exactly the routes of `api::router`, with their methods.
    let mut operations: Vec<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .map(move |method| format!("{method} {path}"))
        })
        .collect();
    operations.sort();
    assert_eq!(
        operations,
        ["get /orders", "get /orders/{id}", "post /orders"],
        "documented operations"
    );

    // The documented example order is accepted, and the answers carry what the
    // document says they always carry.
    let example = doc["components"]["schemas"]["CreateOrder"]["example"].clone();
    assert_eq!(
        example,
        json!({"customer_id": "c-1", "amount_minor": 1999, "currency": "EUR"})
    );
    let created = http
        .post(format!("{base}/orders"))
        .json(&example)
        .send()
        .await
        .expect("POST");
    assert_eq!(created.status(), 201);
    assert!(created.headers().contains_key("location"), "Location");
    let order: Value = created.json().await.expect("JSON");
    assert_has_members(&order, &required(&doc, "OrderView"), "POST /orders 201");

    let id = order["id"].as_str().expect("id").to_owned();
    let fetched: Value = get(format!("{base}/orders/{id}"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_has_members(&fetched, &required(&doc, "OrderView"), "GET /orders/{id}");
    let listed: Value = get(format!("{base}/orders?limit=5"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_has_members(&listed[0], &required(&doc, "OrderSummary"), "GET /orders");

    // An error answer has the documented problem shape and media type.
    let missing = get(format!("{base}/orders/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = missing.json().await.expect("JSON");
    assert_has_members(&problem, &required(&doc, "ProblemDetails"), "404");
    let invalid = http
        .post(format!("{base}/orders"))
        .json(&json!({"customer_id": "", "amount_minor": 0, "currency": "eur"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(invalid.status(), 422);
    let problem: Value = invalid.json().await.expect("JSON");
    assert_has_members(&problem, &required(&doc, "ProblemDetails"), "422");
    assert_eq!(
        problem["errors"].as_array().map(Vec::len),
        Some(3),
        "{problem}"
    );

    // Swagger UI and its assets are served from the binary (no CDN, no download).
    let ui = get(format!("{base}/swagger-ui/")).await;
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.expect("HTML").contains("swagger-ui"));
    let css = get(format!("{base}/swagger-ui/swagger-ui.css")).await;
    assert_eq!(css.status(), 200);
    assert!(
        css.bytes().await.expect("CSS").len() > 10_000,
        "the vendored stylesheet"
    );

    stop.stop().await;
}

#[test]
fn an_unknown_crash_point_fails_fast_with_one_line() {
    test_support::assert_unknown_crash_point_fails_fast(
        env!("CARGO_BIN_EXE_order-service"),
        "order-service",
    );
}

#[test]
fn a_bad_database_url_fails_fast_with_one_line() {
    test_support::assert_bad_database_url_fails_fast(
        env!("CARGO_BIN_EXE_order-service"),
        "order-service",
    );
}

/// order-service purges its own inbox (the payment outcomes it applied), as
/// payment-service does: an id older than `DEDUP_RETENTION_HOURS` goes at start.
#[tokio::test]
async fn purges_its_own_inbox() {
    // A first start migrates the database.
    let first = TestApp::spawn(ENV).await;
    let group = first.env["CONSUMER_GROUP"].clone();
    let pool = first.pool.clone();
    first.stop.stop().await;
    sqlx::query(
        "INSERT INTO inbox (consumer_group, message_id, topic, kafka_partition, kafka_offset, received_at)
         VALUES ($1, gen_random_uuid(), 't', 0, 0, now() - interval '200 hours')",
    )
    .bind(&group)
    .execute(&pool)
    .await
    .expect("an old inbox row");
    let again = TestApp::spawn_on(first.db, &[("CONSUMER_GROUP", &group)]).await;
    test_support::eventually("the old inbox row is purged", || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
            .fetch_one(&pool)
            .await
            .map_err(|e| e.to_string())?;
        if left == 0 {
            Ok(())
        } else {
            Err(format!("{left} rows"))
        }
    })
    .await;
    again.stop.stop().await;
}
