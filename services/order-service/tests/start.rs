//! order-service starts on its own database, answers health and readiness, and
//! refuses bad configuration with one clear line.

use order_service::{App, Config};
use test_support::{TestDatabase, service_env, unique_name};

#[tokio::test]
async fn starts_migrates_and_is_ready() {
    let db = TestDatabase::create().await;
    let mut env = service_env(&db);
    env.insert("ORDER_EVENTS_TOPIC".into(), unique_name("order-events"));
    env.insert("PAYMENT_EVENTS_TOPIC".into(), unique_name("payment-events"));
    env.insert("CONSUMER_GROUP".into(), unique_name("group"));
    let config = Config::from_lookup(&|k: &str| env.get(k).cloned()).expect("config");
    let app = App::build(config).await.expect("app builds");
    let addr = app.local_addr();
    let shutdown = app.shutdown_handle();
    let running = tokio::spawn(app.run_until_stopped());

    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(
        ready.status(),
        200,
        "{}",
        ready.text().await.unwrap_or_default()
    );

    // The service ran its own migrations into its own database.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&db.pool().await)
    .await
    .expect("list tables");
    assert!(tables.contains(&"orders".to_owned()), "{tables:?}");

    shutdown.trigger();
    tokio::time::timeout(std::time::Duration::from_secs(10), running)
        .await
        .expect("stops within 10s of the shutdown switch")
        .expect("task");
}

/// Runs the real binary with `vars` and returns (exit code, stderr).
fn run_binary(vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_order-service"))
        .envs(vars.iter().copied())
        .env("PORT", "0")
        .output()
        .expect("run order-service");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unparsable_database_url_fails_fast_with_one_line() {
    let (code, stderr) = run_binary(&[("DATABASE_URL", "postgres//no-scheme")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line, no backtrace: {stderr}"
    );
    assert!(
        stderr.starts_with("order-service: error: DATABASE_URL="),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_database_fails_fast_naming_the_variable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("postgres://postgres:secret@127.0.0.1:{port}/orders");
    let (code, stderr) = run_binary(&[("DATABASE_URL", &url), ("RUST_LOG", "off")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("DATABASE_URL=") && stderr.contains("cannot reach Postgres"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("secret"),
        "the password is redacted: {stderr}"
    );
}
