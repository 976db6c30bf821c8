//! `GET /healthz` and `GET /readyz`, the same for every service.
//!
//! - `/healthz` answers 200 while the process runs: a liveness probe must not restart a
//!   service because a dependency is down.
//! - `/readyz` checks Postgres, Redis and Kafka concurrently, each with a short timeout,
//!   and answers 200 with what it saw, or 503 `application/problem+json` naming what is
//!   down.
//! - **Redis down is `degraded`, not unready**: Redis is the dedup fast path, and the
//!   inbox in Postgres decides without it (`shared/inbox/src/fast_path.rs`). Taking a
//!   service out of rotation because its cache is gone would turn a slower path into an
//!   outage, so the answer is 200 with `"status": "degraded"` and the Redis check's error.
//! - **The answer is cached for [`CACHE_FOR`]**, and one check runs at a time: each check
//!   builds a librdkafka client (threads, sockets), so a probe flood answered by fresh
//!   checks would exhaust the process. Callers within the window get the same answer,
//!   with its `age_ms`; the Redis connection is kept between checks.
//!
//! Kafka counts as reachable when any broker answers a metadata request. With one of
//! the three nodes stopped the cluster still has a controller quorum and two in-sync
//! replicas, so `acks=all` writes still succeed and the service stays ready.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http_problem::Problem;
use redis::aio::MultiplexedConnection;
use serde_json::{Map, Value, json};
use sqlx::PgPool;

/// How long one dependency may take to answer before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one `/readyz` answer is served again before the dependencies are checked anew.
pub const CACHE_FOR: Duration = Duration::from_secs(1);

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
        self.check_redis_on(&mut None).await
    }

    /// PING over `conn`, opening it first if there is none; a failed check drops it, so
    /// the next one reconnects.
    async fn check_redis_on(&self, conn: &mut Option<MultiplexedConnection>) -> Check {
        let ping = async {
            if conn.is_none() {
                *conn = Some(self.redis.get_multiplexed_async_connection().await?);
            }
            let Some(open) = conn.as_mut() else {
                unreachable!("opened above")
            };
            redis::cmd("PING").query_async::<String>(open).await
        };
        let check = match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
            Ok(Ok(pong)) => return Check::ok("redis", format!("PING answered {pong}")),
            Ok(Err(e)) => Check::down("redis", e.to_string()),
            Err(_) => Check::down("redis", timeout_text()),
        };
        *conn = None;
        check
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

/// What `/readyz` shares between calls: the dependencies, the last answer and the Redis
/// connection.
struct Readiness {
    deps: Dependencies,
    /// The last checks, when they ran (wall clock, for the body) and since when (monotonic).
    /// A `tokio` mutex held across the check: concurrent callers wait for one check.
    last: tokio::sync::Mutex<Option<LastCheck>>,
    redis_conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

#[derive(Clone)]
struct LastCheck {
    checks: Vec<Check>,
    at: Instant,
    checked_at_ms: u128,
}

impl Readiness {
    async fn answer(&self) -> (LastCheck, Duration) {
        let mut last = self.last.lock().await;
        if let Some(fresh) = last.as_ref().filter(|l| l.at.elapsed() < CACHE_FOR) {
            return (fresh.clone(), fresh.at.elapsed());
        }
        let mut conn = self.redis_conn.lock().await;
        let (pg, redis, kafka) = tokio::join!(
            self.deps.check_postgres(),
            self.deps.check_redis_on(&mut conn),
            self.deps.check_kafka()
        );
        let checked = LastCheck {
            checks: vec![pg, redis, kafka],
            at: Instant::now(),
            checked_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
        };
        *last = Some(checked.clone());
        (checked, Duration::ZERO)
    }
}

/// The `/healthz` and `/readyz` routes, to merge into a service's router.
pub fn router<S>(deps: Dependencies) -> Router<S> {
    let readiness = Readiness {
        deps,
        last: tokio::sync::Mutex::new(None),
        redis_conn: tokio::sync::Mutex::new(None),
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Arc::new(readiness))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

async fn readyz(State(readiness): State<Arc<Readiness>>) -> Response {
    let (answer, age) = readiness.answer().await;
    let checks = &answer.checks;
    let mut details = Map::new();
    for c in checks {
        details.insert(c.name.to_owned(), json!({ "ok": c.ok, "detail": c.detail }));
    }
    let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
    let checked_at_ms = u64::try_from(answer.checked_at_ms).unwrap_or(u64::MAX);
    let down: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    // Redis alone down: degraded, still ready (see the module doc).
    if down.iter().all(|name| *name == "redis") {
        let status = if down.is_empty() { "ready" } else { "degraded" };
        let mut body = json!({
            "status": status, "checks": details, "checked_at_ms": checked_at_ms, "age_ms": age_ms,
        });
        if !down.is_empty() {
            body["degraded"] = json!(down);
        }
        return (StatusCode::OK, Json(body)).into_response();
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
    .with("checked_at_ms", checked_at_ms)
    .with("age_ms", age_ms)
    .into_response()
}
