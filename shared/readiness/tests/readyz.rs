//! `/readyz` against the real stack, and against addresses where nothing listens.

use std::time::Duration;

use readiness::Dependencies;
use serde_json::Value;
use test_support::{TestDatabase, ensure_stack};

async fn readyz(deps: Dependencies) -> (u16, Option<String>, Value) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, readiness::router(deps))
            .await
            .expect("serve");
    });
    let response = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .expect("GET /readyz");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    (
        status,
        content_type,
        response.json().await.expect("json body"),
    )
}

async fn deps(db: &TestDatabase) -> Dependencies {
    let urls = ensure_stack();
    Dependencies {
        postgres: db.pool().await,
        redis: redis::Client::open(urls.redis_url.as_str()).expect("redis url"),
        kafka_bootstrap_servers: urls.kafka_bootstrap_servers.clone(),
    }
}

#[tokio::test]
async fn ready_when_postgres_redis_and_kafka_answer() {
    let db = TestDatabase::create().await;
    let (status, _, body) = readyz(deps(&db).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    for name in ["postgres", "redis", "kafka"] {
        assert_eq!(body["checks"][name]["ok"], true, "{name}: {body}");
    }
    assert!(
        body["checks"]["kafka"]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("3 broker(s)"),
        "{body}"
    );
}

#[tokio::test]
async fn not_ready_names_kafka_when_no_broker_answers() {
    let db = TestDatabase::create().await;
    let mut deps = deps(&db).await;
    deps.kafka_bootstrap_servers = format!("127.0.0.1:{}", test_support::unused_port());
    let (status, content_type, body) = readyz(deps).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(body["type"], "/problems/not-ready");
    assert_eq!(body["down"], serde_json::json!(["kafka"]), "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("kafka"),
        "{body}"
    );
}

/// A server of our own, several calls: its address and the router's answers.
async fn serve(deps: Dependencies) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, readiness::router(deps))
            .await
            .expect("serve");
    });
    addr
}

async fn get_readyz(addr: std::net::SocketAddr) -> (u16, Value) {
    let response = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .expect("GET /readyz");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

/// Issue 20, item 5: Redis is a fast path; without it the service still works (the inbox
/// decides), so it stays ready — 200, "degraded", naming Redis.
#[tokio::test]
async fn redis_down_is_degraded_not_unready() {
    let db = TestDatabase::create().await;
    let mut deps = deps(&db).await;
    deps.redis = redis::Client::open(format!("redis://127.0.0.1:{}", test_support::unused_port()))
        .expect("url");
    let (status, _, body) = readyz(deps).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["degraded"], serde_json::json!(["redis"]), "{body}");
    assert_eq!(body["checks"]["redis"]["ok"], false, "{body}");
    assert_eq!(body["checks"]["postgres"]["ok"], true, "{body}");
}

/// The same with a Redis that dies: a throwaway redis-server of this test (never the
/// shared one) answers, then is killed; once the cached answer expires the service
/// reports degraded, still 200.
#[tokio::test]
async fn a_redis_that_stops_turns_ready_into_degraded() {
    let port = test_support::unused_port();
    let mut redis_server = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server (apt: redis-server)");
    let db = TestDatabase::create().await;
    let mut deps = deps(&db).await;
    deps.redis = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("url");
    let addr = serve(deps).await;
    test_support::eventually("the throwaway Redis answers", || async {
        match get_readyz(addr).await {
            (200, body) if body["status"] == "ready" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    redis_server.kill().await.expect("kill the throwaway Redis");
    tokio::time::sleep(readiness::CACHE_FOR + Duration::from_millis(200)).await;
    let (status, body) = get_readyz(addr).await;
    eprintln!("Redis stopped: {status} {body}");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["redis"]["ok"], false, "{body}");
}

/// Issue 20, item 5: a flood of probes is answered from one check per `CACHE_FOR`, not a
/// librdkafka client and a Redis connection per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_probes_runs_one_check_per_cache_window() {
    let db = TestDatabase::create().await;
    let addr = serve(deps(&db).await).await;
    let answers = futures::future::join_all((0..50).map(|_| get_readyz(addr))).await;
    let checked: std::collections::BTreeSet<u64> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "{body}");
            body["checked_at_ms"].as_u64().expect("checked_at_ms")
        })
        .collect();
    eprintln!("50 concurrent probes: {} check(s)", checked.len());
    assert!(
        checked.len() <= 2,
        "one check (two if the window turned): {checked:?}"
    );
    tokio::time::sleep(readiness::CACHE_FOR + Duration::from_millis(100)).await;
    let (_, later) = get_readyz(addr).await;
    assert!(
        later["checked_at_ms"].as_u64() > checked.last().copied(),
        "checked anew after the window: {later}"
    );
}
