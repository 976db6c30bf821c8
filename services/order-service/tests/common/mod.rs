//! What the order-service test files share: the order they post, an HTTP client, and
//! the service binary crashing at a named point while it handles that order.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

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
