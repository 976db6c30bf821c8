//! The `Idempotency-Key` of `POST /orders` against real Postgres: a retry gets the first
//! answer and never a second order, also when retries race each other or follow a crash
//! after the commit (crash point A1); another body under the key is refused; keys expire.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use order_service::{Config, idempotency};
use reqwest::header::HeaderValue;
use serde_json::Value;
use sqlx::PgPool;
use test_support::{TestDatabase, unique_name};

mod common;

use common::{ORDER, TestApp};
const OTHER_ORDER: &str = r#"{"customer_id":"c-1","amount_minor":2999,"currency":"EUR"}"#;
const DAY: Duration = Duration::from_secs(24 * 3600);

/// order-service on its own database, on port 0.
type Service = TestApp;

async fn start_on(db: TestDatabase) -> Service {
    let service = TestApp::spawn_on(db, &[]).await;
    let config = Config::from_lookup(&|k: &str| service.env.get(k).cloned()).expect("config");
    assert_eq!(config.idempotency_retention, DAY, "the documented default");
    service
}

async fn start() -> Service {
    start_on(TestDatabase::create().await).await
}

impl Service {
    async fn post(&self, key: Option<&str>, body: &str) -> reqwest::Response {
        self.post_raw(
            key.map(|k| HeaderValue::from_str(k).expect("header value")),
            body,
        )
        .await
    }

    async fn post_raw(&self, key: Option<HeaderValue>, body: &str) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/orders", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("POST /orders")
    }

    async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn orders(&self) -> i64 {
        self.count("SELECT count(*) FROM orders").await
    }

    async fn outbox_rows(&self) -> i64 {
        self.count("SELECT count(*) FROM outbox").await
    }

    async fn stop(self) {
        self.pool.close().await;
        self.stop.stop().await;
        drop(self.db);
    }
}

/// Status, `Location`, `Idempotent-Replayed` and the JSON body of an answer.
struct Answer {
    status: u16,
    location: Option<String>,
    replayed: bool,
    content_type: String,
    retry_after: Option<String>,
    body: Value,
}

async fn answer(response: reqwest::Response) -> Answer {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_owned())
    };
    let status = response.status().as_u16();
    let location = header("location");
    let replayed = match header("idempotent-replayed").as_deref() {
        None => false,
        Some("true") => true,
        Some(other) => panic!("Idempotent-Replayed: {other}"),
    };
    let content_type = header("content-type").unwrap_or_default();
    let retry_after = header("retry-after");
    let body = response.json().await.expect("a JSON body");
    Answer {
        status,
        location,
        replayed,
        content_type,
        retry_after,
        body,
    }
}

#[tokio::test]
async fn a_replay_returns_the_first_answer_and_no_second_order() {
    let service = start().await;
    let key = unique_name("key");

    let first = answer(service.post(Some(&key), ORDER).await).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(!first.replayed, "the first answer is not a replay");
    let id = first.body["id"].as_str().expect("order id").to_owned();
    assert_eq!(first.location.as_deref(), Some(&*format!("/orders/{id}")));

    for _ in 0..2 {
        let again = answer(service.post(Some(&key), ORDER).await).await;
        assert_eq!(again.status, 201);
        assert!(again.replayed, "marked Idempotent-Replayed: true");
        assert_eq!(again.location, first.location);
        assert_eq!(again.body, first.body, "the same body, timeline and all");
    }
    assert_eq!(service.orders().await, 1);
    assert_eq!(service.outbox_rows().await, 1);

    // The answer describes the order as stored.
    let stored: Value = service
        .http
        .get(format!("{}/orders/{id}", service.base))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    for field in [
        "id",
        "customer_id",
        "amount_minor",
        "currency",
        "created_at",
    ] {
        assert_eq!(stored[field], first.body[field], "{field}");
    }
    service.stop().await;
}

#[tokio::test]
async fn without_a_key_every_post_creates_an_order() {
    let service = start().await;
    for _ in 0..2 {
        let created = answer(service.post(None, ORDER).await).await;
        assert_eq!(created.status, 201);
        assert!(!created.replayed);
    }
    assert_eq!(service.orders().await, 2);
    assert_eq!(
        service.count("SELECT count(*) FROM idempotency_keys").await,
        0
    );
    service.stop().await;
}

#[tokio::test]
async fn the_same_key_with_another_body_gets_422_and_no_order() {
    let service = start().await;
    let key = unique_name("key");
    assert_eq!(service.post(Some(&key), ORDER).await.status(), 201);

    let refused = answer(service.post(Some(&key), OTHER_ORDER).await).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.content_type, "application/problem+json");
    assert_eq!(refused.body["type"], "/problems/idempotency-key-reused");
    assert_eq!(refused.body["idempotency_key"], key.as_str());
    let detail = refused.body["detail"].as_str().expect("detail");
    assert!(detail.contains(&key), "names the key: {detail}");
    assert_eq!(service.orders().await, 1);
    assert_eq!(service.outbox_rows().await, 1);

    // The key still answers its own request.
    let again = answer(service.post(Some(&key), ORDER).await).await;
    assert!(again.status == 201 && again.replayed);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_key_create_exactly_one_order() {
    let service = start().await;
    let key = unique_name("key");

    let answers = futures::future::join_all(
        (0..20).map(|_| async { answer(service.post(Some(&key), ORDER).await).await }),
    )
    .await;

    for a in &answers {
        assert_eq!(
            a.status, 201,
            "every request waits for the first: {}",
            a.body
        );
    }
    let first = &answers[0];
    for a in &answers {
        assert_eq!(a.body["id"], first.body["id"], "one order id for all");
        assert_eq!(a.body, first.body);
        assert_eq!(a.location, first.location);
    }
    let originals = answers.iter().filter(|a| !a.replayed).count();
    assert_eq!(originals, 1, "one request created, the others replayed");
    assert_eq!(service.orders().await, 1);
    assert_eq!(service.outbox_rows().await, 1);
    service.stop().await;
}

#[tokio::test]
async fn a_request_waiting_too_long_for_its_key_gets_409_with_retry_after() {
    let service = start().await;
    let key = unique_name("key");

    // A "stuck first request": a transaction that holds the key and does not end.
    let mut stuck = service.pool.begin().await.expect("begin");
    sqlx::query("INSERT INTO idempotency_keys (key, request_hash) VALUES ($1, 'stuck')")
        .bind(&key)
        .execute(&mut *stuck)
        .await
        .expect("hold the key");

    let started = Instant::now();
    let waited = answer(service.post(Some(&key), ORDER).await).await;
    let elapsed = started.elapsed();
    assert_eq!(waited.status, 409, "{}", waited.body);
    assert_eq!(waited.content_type, "application/problem+json");
    assert_eq!(waited.body["type"], "/problems/idempotency-key-in-flight");
    assert_eq!(waited.retry_after.as_deref(), Some("1"));
    assert!(
        elapsed >= idempotency::IN_FLIGHT_WAIT.mul_f32(0.9) && elapsed < Duration::from_secs(15),
        "it waited for the other request, boundedly: {elapsed:?}"
    );
    assert_eq!(service.orders().await, 0);

    // The holder gives up: the retry the 409 asked for goes through.
    stuck.rollback().await.expect("rollback");
    let retried = answer(service.post(Some(&key), ORDER).await).await;
    assert!(
        retried.status == 201 && !retried.replayed,
        "{}",
        retried.body
    );
    assert_eq!(service.orders().await, 1);
    service.stop().await;
}

#[tokio::test]
async fn a_rejected_body_does_not_use_up_the_key() {
    let service = start().await;
    let key = unique_name("key");

    let invalid = r#"{"customer_id":"c-1","amount_minor":0,"currency":"EUR"}"#;
    assert_eq!(service.post(Some(&key), invalid).await.status(), 422);
    assert_eq!(service.post(Some(&key), "{not json").await.status(), 400);
    assert_eq!(
        service.count("SELECT count(*) FROM idempotency_keys").await,
        0
    );

    let fixed = answer(service.post(Some(&key), ORDER).await).await;
    assert!(fixed.status == 201 && !fixed.replayed, "{}", fixed.body);
    assert_eq!(service.orders().await, 1);
    service.stop().await;
}

#[tokio::test]
async fn a_key_past_its_retention_window_creates_a_new_order() {
    let service = start().await;
    let key = unique_name("key");
    let first = answer(service.post(Some(&key), ORDER).await).await;
    assert_eq!(first.status, 201);

    // Just inside the window (23 h): still a replay.
    age_key(&service.pool, &key, 23).await;
    let inside = answer(service.post(Some(&key), ORDER).await).await;
    assert!(inside.replayed && inside.body == first.body);

    // Past it (25 h, default retention 24 h): the key is new again.
    age_key(&service.pool, &key, 25).await;
    let later = answer(service.post(Some(&key), ORDER).await).await;
    assert_eq!(later.status, 201);
    assert!(!later.replayed, "an expired key is not replayed");
    assert_ne!(later.body["id"], first.body["id"]);
    assert_eq!(service.orders().await, 2);

    // ...and now answers with the new order.
    let replay = answer(service.post(Some(&key), ORDER).await).await;
    assert!(replay.replayed);
    assert_eq!(replay.body["id"], later.body["id"]);
    service.stop().await;
}

#[tokio::test]
async fn the_purge_deletes_expired_keys_only() {
    // The service's own purge loop keeps keys for 72 hours here, so its first pass (it
    // runs at start, at a moment a loaded machine decides) cannot take the aged keys
    // before the purge under test counts them.
    let service = TestApp::spawn(&[("IDEMPOTENCY_RETENTION_HOURS", "72")]).await;
    let mut keys = HashMap::new();
    for (name, age_hours) in [("fresh", 0), ("recent", 23), ("old", 25), ("older", 48)] {
        let key = unique_name(name);
        assert_eq!(service.post(Some(&key), ORDER).await.status(), 201);
        age_key(&service.pool, &key, age_hours).await;
        keys.insert(name, key);
    }

    let purged = idempotency::purge_expired_once(&service.pool, DAY)
        .await
        .expect("purge");
    assert_eq!(purged, 2);
    let mut left: Vec<String> = sqlx::query_scalar("SELECT key FROM idempotency_keys")
        .fetch_all(&service.pool)
        .await
        .expect("keys");
    left.sort();
    let mut expected = vec![keys["fresh"].clone(), keys["recent"].clone()];
    expected.sort();
    assert_eq!(left, expected);
    assert_eq!(
        idempotency::purge_expired_once(&service.pool, DAY)
            .await
            .expect("purge"),
        0
    );
    // The orders stay: only the memory of the keys goes.
    assert_eq!(service.orders().await, 4);
    service.stop().await;
}

#[tokio::test]
async fn a_malformed_key_gets_400_naming_the_header() {
    let service = start().await;
    let too_long = "k".repeat(256);
    let bad: [&[u8]; 5] = [
        b"",
        b"two words",
        too_long.as_bytes(),
        b"caf\xc3\xa9",
        b"tab\tkey",
    ];
    for raw in bad {
        let value = HeaderValue::from_bytes(raw).expect("sendable header value");
        let refused = answer(service.post_raw(Some(value), ORDER).await).await;
        assert_eq!(refused.status, 400, "{raw:?}: {}", refused.body);
        assert_eq!(refused.content_type, "application/problem+json");
        assert_eq!(refused.body["type"], "/problems/invalid-idempotency-key");
        assert_eq!(refused.body["header"], "Idempotency-Key");
    }
    // 255 visible ASCII characters are fine.
    let longest = "k".repeat(255);
    assert_eq!(service.post(Some(&longest), ORDER).await.status(), 201);
    assert_eq!(service.orders().await, 1);
    service.stop().await;
}

/// Crash point A1 for real: the binary aborts after the commit, before answering. The
/// client's retry with the same key, to the restarted service, gets the order that was
/// created, not a second one.
#[tokio::test]
async fn after_a_crash_between_commit_and_answer_the_retry_gets_the_created_order() {
    let db = TestDatabase::create().await;
    let key = unique_name("key");
    common::post_and_crash_at(
        common::app_env(&db, &[]),
        "A1",
        &[("Idempotency-Key", &key)],
    )
    .await;

    // Restarted (without CRASH_AT), the client's retry replays the committed order.
    let service = start_on(db).await;
    assert_eq!(
        service.orders().await,
        1,
        "the order was committed before the crash"
    );
    let created: String = sqlx::query_scalar("SELECT id::text FROM orders")
        .fetch_one(&service.pool)
        .await
        .expect("the order");
    let retry = answer(service.post(Some(&key), ORDER).await).await;
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert!(retry.replayed);
    assert_eq!(retry.body["id"], created.as_str());
    assert_eq!(
        retry.location.as_deref(),
        Some(&*format!("/orders/{created}"))
    );
    assert_eq!(service.orders().await, 1);
    assert_eq!(service.outbox_rows().await, 1);
    service.stop().await;
}

/// Moves a key's first use `hours` into the past.
async fn age_key(pool: &PgPool, key: &str, hours: i32) {
    sqlx::query(
        "UPDATE idempotency_keys SET created_at = now() - make_interval(hours => $2)
         WHERE key = $1",
    )
    .bind(key)
    .bind(hours)
    .execute(pool)
    .await
    .expect("age the key");
}
