//! Checks every service must pass the same way: it answers `/healthz` and `/readyz`,
//! and a bad `DATABASE_URL` stops its binary with one clear line.

use std::net::SocketAddr;

use sqlx::PgPool;

/// A loopback port nothing listens on (bound, then released).
pub fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `/healthz` and `/readyz` both answer 200.
pub async fn assert_live_and_ready(addr: SocketAddr) {
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("GET /healthz");
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .expect("GET /readyz");
    let status = ready.status();
    assert_eq!(status, 200, "{}", ready.text().await.unwrap_or_default());
}

/// The tables in the `public` schema: what the service's migrations created.
pub async fn table_names(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("list tables")
}

/// Runs the service binary at `binary` twice with a bad `DATABASE_URL` — unparsable,
/// then unreachable (with a password that must not be printed) — and checks each run
/// exits 1 with exactly one line `<service>: error: DATABASE_URL=...`.
pub fn assert_bad_database_url_fails_fast(binary: &str, service: &str) {
    let run = |url: &str| {
        let out = std::process::Command::new(binary)
            .env("DATABASE_URL", url)
            .env("PORT", "0")
            .env("RUST_LOG", "off")
            .output()
            .expect("run the service binary");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run("postgres//no-scheme");
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line, no backtrace: {stderr}"
    );
    assert!(
        stderr.starts_with(&format!("{service}: error: DATABASE_URL=")),
        "{stderr}"
    );

    let (code, stderr) = run(&format!(
        "postgres://postgres:secret@127.0.0.1:{}/db",
        unused_port()
    ));
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

/// A `CRASH_AT` that names no crash point of the failure matrix (a typo in a drill)
/// stops the service at start with one line naming the variable, instead of running the
/// drill silently without its crash.
pub fn assert_unknown_crash_point_fails_fast(binary: &str, service: &str) {
    let out = std::process::Command::new(binary)
        .env("CRASH_AT", "R9")
        .env("PORT", "0")
        .env("RUST_LOG", "off")
        .output()
        .expect("run the service binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line, no backtrace: {stderr}"
    );
    assert!(
        stderr.starts_with(&format!(
            "{service}: error: CRASH_AT=\"R9\": no crash point \"R9\": one of A1, A2"
        )),
        "{stderr}"
    );
}
