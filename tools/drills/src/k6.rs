//! k6 as the load of the scale-out drill and the soak: the scale-out scenario
//! (`load-tests/scale-out.js`) started as a child process, awaited, and its summary read.

use std::process::{Child, Stdio};
use std::time::Duration;

use crate::error::DrillError;

/// k6 with the scale-out scenario (`RATE` orders/s for `duration` over `base_urls`, each
/// order retried with its key), its output in drill-results/logs/k6-<name>.log; `vars`
/// on top (the soak's longer `PATIENCE_MS`).
pub fn start(
    name: &str,
    base_urls: &str,
    rate: u32,
    duration: Duration,
    vars: &[(&str, &str)],
    summary: &std::path::Path,
) -> Result<std::process::Child, DrillError> {
    let root = test_support::repo_root();
    let install = std::process::Command::new("bash")
        .arg(root.join("load-tests/install-k6.sh"))
        .output()
        .map_err(|e| DrillError::Setup(format!("install k6: {e}")))?;
    if !install.status.success() {
        return Err(DrillError::Setup(format!(
            "install k6: {}",
            String::from_utf8_lossy(&install.stderr)
        )));
    }
    let k6 = String::from_utf8_lossy(&install.stdout).trim().to_owned();
    let log = std::fs::File::create(crate::results_dir().join(format!("logs/k6-{name}.log")))
        .map_err(DrillError::setup)?;
    std::process::Command::new(k6)
        .args(["run", "--no-color", "--quiet"])
        .arg(root.join("load-tests/scale-out.js"))
        .env("BASE_URLS", base_urls)
        .env("RATE", rate.to_string())
        .env("DURATION", format!("{}s", duration.as_secs()))
        .env("SUMMARY_JSON", summary)
        .envs(vars.iter().copied())
        .stdout(Stdio::from(log.try_clone().map_err(DrillError::setup)?))
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| DrillError::Setup(format!("start k6: {e}")))
}

/// (orders created, failed requests, replayed answers) from k6's summary.
pub fn read_summary(path: &std::path::Path) -> (u64, u64, u64) {
    let data: serde_json::Value = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let count = |metric: &str, field: &str| {
        data["metrics"][metric]["values"][field]
            .as_f64()
            .unwrap_or(0.0) as u64
    };
    (
        count("orders_created", "count"),
        count("http_req_failed", "passes"),
        count("orders_replayed", "count"),
    )
}

/// Waits for k6 to end (off the async threads: `wait` blocks) and returns its exit code.
pub async fn wait(mut k6: Child) -> Result<i32, DrillError> {
    let status = tokio::task::spawn_blocking(move || k6.wait())
        .await
        .map_err(DrillError::unexpected)?
        .map_err(|e| DrillError::Unexpected(format!("k6: {e}")))?;
    Ok(status.code().unwrap_or(-1))
}
