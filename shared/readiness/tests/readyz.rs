//! `/readyz` against the real stack, and against addresses where nothing listens.

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

#[tokio::test]
async fn not_ready_names_redis_when_it_does_not_answer() {
    let db = TestDatabase::create().await;
    let mut deps = deps(&db).await;
    deps.redis = redis::Client::open(format!("redis://127.0.0.1:{}", test_support::unused_port()))
        .expect("url");
    let (status, _, body) = readyz(deps).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["down"], serde_json::json!(["redis"]), "{body}");
    assert_eq!(body["checks"]["postgres"]["ok"], true, "{body}");
}
