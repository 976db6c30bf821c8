//! The API contract (issue 20): every error answer is problem+json — the path, query,
//! media-type, size and method rejections included — a `\u0000` in a field is the
//! client's 422, not the database's 503, and the OpenAPI document states the bounds the
//! server enforces. `scripts/api-fuzz.sh` (schemathesis, in `make test`) checks the same
//! contract with generated requests; these are the cases it found, pinned.

use serde_json::{Value, json};

mod common;

use common::TestApp;

/// No relay: the API alone is under test.
const ENV: &[(&str, &str)] = &[("RELAY_ENABLED", "false")];

/// Asserts `response` is problem+json with `status` and `type` `/problems/<kind>`.
async fn assert_problem(response: reqwest::Response, status: u16, kind: &str) -> Value {
    let what = format!("{} {}", response.status(), response.url());
    assert_eq!(response.status().as_u16(), status, "{what}");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{what}"
    );
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body["type"], format!("/problems/{kind}"), "{what}: {body}");
    assert_eq!(body["status"], status, "{body}");
    body
}

#[tokio::test]
async fn every_error_answer_is_problem_json() {
    let app = TestApp::spawn(ENV).await;
    let (addr, stop) = (app.addr, app.stop);
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    // A NUL in customer_id: Postgres refuses it in `text`; the API must refuse it first.
    let nul = http
        .post(format!("{base}/orders"))
        .json(&json!({"customer_id": "c\u{0}1", "amount_minor": 1999, "currency": "EUR"}))
        .send()
        .await
        .expect("POST");
    let body = assert_problem(nul, 422, "invalid-order").await;
    assert_eq!(body["errors"][0]["field"], "customer_id", "{body}");

    let not_a_uuid = http
        .get(format!("{base}/orders/not-a-uuid"))
        .send()
        .await
        .expect("GET");
    let body = assert_problem(not_a_uuid, 400, "invalid-parameter").await;
    assert_eq!(body["parameter"], "id", "{body}");
    for query in ["limit=abc", "limit=0", "limit=201", "limit=-1"] {
        let bad = http
            .get(format!("{base}/orders?{query}"))
            .send()
            .await
            .expect("GET");
        assert_problem(bad, 400, "invalid-parameter").await;
    }
    let ok = http
        .get(format!("{base}/orders?limit=200"))
        .send()
        .await
        .expect("GET");
    assert_eq!(ok.status(), 200);

    let text = http
        .post(format!("{base}/orders"))
        .header("content-type", "text/plain")
        .body(r#"{"customer_id":"c-1","amount_minor":1999,"currency":"EUR"}"#)
        .send()
        .await
        .expect("POST");
    assert_problem(text, 415, "unsupported-media-type").await;
    let huge = http
        .post(format!("{base}/orders"))
        .header("content-type", "application/json")
        .body(vec![b' '; 64 * 1024])
        .send()
        .await
        .expect("POST");
    assert_problem(huge, 413, "body-too-large").await;

    let put = http
        .put(format!("{base}/orders"))
        .send()
        .await
        .expect("PUT");
    assert!(put.headers().contains_key("allow"), "405 keeps Allow");
    assert_problem(put, 405, "method-not-allowed").await;
    let nowhere = http
        .get(format!("{base}/nowhere"))
        .send()
        .await
        .expect("GET");
    assert_problem(nowhere, 404, "not-found").await;
    stop.stop().await;
}

#[tokio::test]
async fn the_document_states_the_bounds_the_server_enforces() {
    let app = TestApp::spawn(ENV).await;
    let (addr, stop) = (app.addr, app.stop);
    let doc: Value = reqwest::get(format!("http://{addr}/openapi.json"))
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let order = &doc["components"]["schemas"]["CreateOrder"]["properties"];
    assert_eq!(order["amount_minor"]["minimum"], 1, "{order}");
    assert_eq!(
        order["amount_minor"]["maximum"], 10_000_000_000_i64,
        "{order}"
    );
    assert_eq!(order["currency"]["pattern"], "^[A-Z]{3}$", "{order}");
    assert_eq!(order["customer_id"]["maxLength"], 64, "{order}");
    let post = &doc["paths"]["/orders"]["post"];
    let key = post["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "Idempotency-Key"))
        .expect("the Idempotency-Key parameter");
    assert_eq!(key["schema"]["maxLength"], 255, "{key}");
    assert_eq!(key["schema"]["pattern"], "^[!-~]{1,255}$", "{key}");
    let limit = &doc["paths"]["/orders"]["get"]["parameters"][0];
    assert_eq!(
        (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
        (&json!(1), &json!(200)),
        "{limit}"
    );
    let statuses = |op: &Value| -> Vec<String> {
        op["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(
        statuses(post),
        [
            "201", "400", "405", "409", "413", "415", "422", "500", "503"
        ]
    );
    assert_eq!(
        statuses(&doc["paths"]["/orders/{id}"]["get"]),
        ["200", "400", "404", "405", "500", "503"]
    );
    // The link that lets a client (and schemathesis' stateful phase) go POST -> GET.
    let link = &post["responses"]["201"]["links"]["GetOrderById"];
    assert_eq!(link["operationId"], "get_order", "{link}");
    assert_eq!(link["parameters"]["id"], "$response.body#/id", "{link}");
    stop.stop().await;
}
