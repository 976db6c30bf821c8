//! `GET /healthz` and `GET /readyz`, the same for every service.
//!
//! - `/healthz` answers 200 while the process runs: a liveness probe must not restart a
//!   service because a dependency is down.
//! - `/readyz` checks Postgres, Redis and Kafka concurrently, each with a short timeout,
//!   and answers 200 with what it saw, or 503 `application/problem+json` naming what is
//!   down.
//!
//! Kafka counts as reachable when any broker answers a metadata request. With one of
//! the three nodes stopped the cluster still has a controller quorum and two in-sync
//! replicas, so `acks=all` writes still succeed and the service stays ready.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http_problem::Problem;
use serde_json::{Map, Value, json};
use sqlx::PgPool;

/// How long one dependency may take to answer before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The dependencies a service needs to be ready.
#[derive(Debug, Clone)]
pub struct Dependencies {
    pub postgres: PgPool,
    pub redis: redis::Client,
    pub kafka_bootstrap_servers: String,
}

/// The result of checking one dependency.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl Dependencies {
    /// Runs the three checks concurrently.
    pub async fn check_all(&self) -> Vec<Check> {
        let (pg, redis, kafka) = tokio::join!(
            self.check_postgres(),
            self.check_redis(),
            self.check_kafka()
        );
        vec![pg, redis, kafka]
    }

    async fn check_postgres(&self) -> Check {
        let query = sqlx::query("SELECT 1").execute(&self.postgres);
        match tokio::time::timeout(CHECK_TIMEOUT, query).await {
            Ok(Ok(_)) => Check::ok("postgres", "SELECT 1 answered"),
            Ok(Err(e)) => Check::down("postgres", e.to_string()),
            Err(_) => Check::down("postgres", timeout_text()),
        }
    }

    async fn check_redis(&self) -> Check {
        let ping = async {
            let mut conn = self.redis.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
            Ok(Ok(pong)) => Check::ok("redis", format!("PING answered {pong}")),
            Ok(Err(e)) => Check::down("redis", e.to_string()),
            Err(_) => Check::down("redis", timeout_text()),
        }
    }

    async fn check_kafka(&self) -> Check {
        match kafka_config::describe_cluster(&self.kafka_bootstrap_servers, CHECK_TIMEOUT).await {
            Ok(view) if !view.broker_ids.is_empty() => {
                let mut ids = view.broker_ids;
                ids.sort_unstable();
                Check::ok("kafka", format!("{} broker(s) up: {ids:?}", ids.len()))
            }
            Ok(_) => Check::down("kafka", "metadata lists no broker".to_owned()),
            Err(e) => Check::down("kafka", e.to_string()),
        }
    }
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            ok: true,
            detail: detail.into(),
        }
    }
    fn down(name: &'static str, detail: String) -> Self {
        Self {
            name,
            ok: false,
            detail,
        }
    }
}

fn timeout_text() -> String {
    format!("no answer within {}s", CHECK_TIMEOUT.as_secs())
}

/// The `/healthz` and `/readyz` routes, to merge into a service's router.
pub fn router<S>(deps: Dependencies) -> Router<S> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Arc::new(deps))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

async fn readyz(State(deps): State<Arc<Dependencies>>) -> Response {
    let checks = deps.check_all().await;
    let mut details = Map::new();
    for c in &checks {
        details.insert(c.name.to_owned(), json!({ "ok": c.ok, "detail": c.detail }));
    }
    let down: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    if down.is_empty() {
        return (
            StatusCode::OK,
            Json(json!({ "status": "ready", "checks": details })),
        )
            .into_response();
    }
    tracing::warn!(?down, "readiness check failed");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not-ready",
        "Service not ready",
        format!(
            "cannot reach {}; start it (`make up`) or check its address in the environment",
            down.join(", ")
        ),
    )
    .with("down", down)
    .with("checks", Value::Object(details))
    .into_response()
}
