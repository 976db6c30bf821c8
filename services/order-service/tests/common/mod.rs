//! What the order-service test files share: the app they start ([`TestApp::spawn`]),
//! the order they post, an HTTP client, and the service binary crashing at a named
//! point while it handles that order.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use order_service::direct_publish::SendLog;
use order_service::{App, Config};
use sqlx::PgPool;
use test_support::{StopHandle, TestDatabase, service_env, unique_name};

/// One order-service of a test, running in the test's process on port 0: a database of
/// its own, topics and a consumer group of their own (so tests run side by side on the
/// shared cluster), a send log in a temporary directory of its own.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub pool: PgPool,
    /// The environment the app was built from (`overrides` applied).
    pub env: HashMap<String, String>,
    pub order_events_topic: String,
    /// `SEND_LOG_PATH`, and direct mode's running send log (`None` in outbox mode).
    pub send_log_path: PathBuf,
    pub send_log: Option<Arc<SendLog>>,
    pub stop: StopHandle,
    // Last: dropped after the pool, it drops the database.
    pub db: TestDatabase,
}

impl TestApp {
    /// Starts on a fresh database; `overrides` replace the environment last.
    pub async fn spawn(overrides: &[(&str, &str)]) -> Self {
        Self::spawn_on(TestDatabase::create().await, overrides).await
    }

    /// Starts on `db` (a database a test prepared, or one a stopped app left).
    pub async fn spawn_on(db: TestDatabase, overrides: &[(&str, &str)]) -> Self {
        let env = app_env(&db, overrides);
        let config = Config::from_lookup(&|k: &str| env.get(k).cloned()).expect("config");
        let app = App::build(config).await.expect("app builds");
        let addr = app.local_addr();
        let send_log = app.send_log();
        let stop = StopHandle::new(app.shutdown_handle(), tokio::spawn(app.run_until_stopped()));
        Self {
            base: format!("http://{addr}"),
            addr,
            http: http_client(),
            pool: db.pool().await,
            order_events_topic: env["ORDER_EVENTS_TOPIC"].clone(),
            send_log_path: PathBuf::from(&env["SEND_LOG_PATH"]),
            send_log,
            env,
            stop,
            db,
        }
    }
}

/// The environment of a test's order-service on `db`: unique topics and group, a send
/// log in a fresh temporary directory; `overrides` last. The binary run by
/// [`post_and_crash_at`] gets it too.
pub fn app_env(db: &TestDatabase, overrides: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env = service_env(db);
    env.insert("ORDER_EVENTS_TOPIC".into(), unique_name("order-events"));
    env.insert("PAYMENT_EVENTS_TOPIC".into(), unique_name("payment-events"));
    env.insert("CONSUMER_GROUP".into(), unique_name("group"));
    env.insert(
        "SEND_LOG_PATH".into(),
        temp_send_log().display().to_string(),
    );
    for (name, value) in overrides {
        env.insert((*name).to_owned(), (*value).to_owned());
    }
    env
}

/// A send-log path of a test's own, in a fresh temporary directory.
pub fn temp_send_log() -> PathBuf {
    std::env::temp_dir()
        .join(unique_name("order-send-log"))
        .join("send.log")
}

/// A valid order (its amount ends in 99: the simulated provider approves it).
pub const ORDER: &str = r#"{"customer_id":"c-1","amount_minor":1999,"currency":"EUR"}"#;

/// Bounded: a hung request fails the test instead of stalling the run.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// Runs the `order-service` binary with `env` and `CRASH_AT=<crash_at>`, posts
/// [`ORDER`] with `headers`, and returns once the process has died in that request:
/// the client got no answer and the exit was not a success.
pub async fn post_and_crash_at(
    env: HashMap<String, String>,
    crash_at: &str,
    headers: &[(&str, &str)],
) {
    let port = test_support::unused_port();
    let mut crashing = tokio::process::Command::new(env!("CARGO_BIN_EXE_order-service"))
        .env_clear()
        .envs(env)
        .env("PORT", port.to_string())
        .env("CRASH_AT", crash_at)
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start order-service");
    let base = format!("http://127.0.0.1:{port}");
    let http = http_client();
    test_support::eventually("the crashing order-service answers /healthz", || async {
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
    })
    .await;

    let mut request = http
        .post(format!("{base}/orders"))
        .header("content-type", "application/json")
        .body(ORDER);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let lost = request.send().await;
    assert!(
        lost.is_err(),
        "the process died at {crash_at} before answering: {lost:?}"
    );
    let exit = tokio::time::timeout(Duration::from_secs(10), crashing.wait())
        .await
        .expect("the process ends")
        .expect("exit status");
    assert!(!exit.success(), "aborted at {crash_at}: {exit:?}");
}
