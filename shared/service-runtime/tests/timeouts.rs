//! The server's timeouts (issue 20, item 6): a client that sends its headers too slowly
//! loses its connection, and a request that takes too long gets `503` problem+json.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use lifecycle::Shutdown;
use service_runtime::HttpServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn serve(router: Router) -> (std::net::SocketAddr, Shutdown) {
    let shutdown = Shutdown::default();
    let server = HttpServer::bind(([127, 0, 0, 1], 0).into(), router, shutdown.clone())
        .await
        .expect("bind")
        .with_timeouts(Duration::from_millis(500), Duration::from_millis(500));
    let addr = server.local_addr();
    tokio::spawn(server.serve());
    (addr, shutdown)
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let (addr, shutdown) = serve(Router::new().route("/", get(|| async { "hi" }))).await;
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("half the headers");
    let started = Instant::now();
    let mut rest = Vec::new();
    // The server answers 408 (or just closes); either way the connection ends.
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    eprintln!(
        "slow headers: connection ended after {:?}: {:?}",
        started.elapsed(),
        String::from_utf8_lossy(&rest)
    );
    assert!(
        read.is_ok(),
        "the server closes a connection whose headers do not arrive"
    );
    shutdown.trigger();
}

#[tokio::test]
async fn a_request_that_takes_too_long_gets_503_problem_json() {
    let slow = || async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        "late"
    };
    let (addr, shutdown) = serve(Router::new().route("/slow", get(slow))).await;
    let started = Instant::now();
    let response = reqwest::get(format!("http://{addr}/slow"))
        .await
        .expect("an answer");
    let elapsed = started.elapsed();
    assert_eq!(response.status().as_u16(), 503);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(
        response.headers()["content-type"].to_str().ok(),
        Some("application/problem+json")
    );
    assert_eq!(response.headers()["retry-after"].to_str().ok(), Some("1"));
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["type"], "/problems/request-timeout", "{body}");
    shutdown.trigger();
}
