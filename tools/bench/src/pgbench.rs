//! The database ceiling: `pgbench` running a custom script that does what one unit of
//! the service's work does in Postgres, against the same schema on the same server, with
//! prepared statements (as sqlx sends them). The service cannot beat this; its ratio to
//! it says what HTTP, Rust, the pool and the extra round trips cost.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::process::Command;

/// What pgbench reported.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct PgbenchResult {
    pub clients: usize,
    pub transactions: u64,
    /// Transactions per second, without the initial connection time.
    pub tps: f64,
    pub latency_avg_ms: f64,
}

/// Runs `script` (written to `script_path`) for `seconds` with `clients` connections.
pub async fn run(
    database_url: &str,
    script: &str,
    script_path: &Path,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<PgbenchResult> {
    std::fs::write(script_path, script)?;
    // As many threads as clients (`-c N -j N`): the ceiling at a concurrency is N
    // independent sessions, as the service's N handlers or N HTTP clients are; pgbench's
    // own threads mostly wait on the server, so more threads than cores costs little.
    let threads = clients.max(1);
    let run = Command::new("pgbench")
        .args(["-n", "-M", "prepared"])
        .args(["-c", &clients.to_string(), "-j", &threads.to_string()])
        .args(["-T", &seconds.to_string()])
        .arg("-f")
        .arg(script_path)
        // libpq takes a connection URI where a database name goes.
        .arg(database_url)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(seconds + 60), run)
        .await
        .context("pgbench did not finish in time")?
        .context("running pgbench (Debian: apt-get install postgresql-client)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_output(&stdout, clients).with_context(|| format!("unexpected pgbench output:\n{stdout}"))
}

/// Reads `number of transactions actually processed: N`, `latency average = X ms` and
/// `tps = Y (without initial connection time)` from pgbench's report.
pub fn parse_output(stdout: &str, clients: usize) -> Option<PgbenchResult> {
    let mut result = PgbenchResult {
        clients,
        ..PgbenchResult::default()
    };
    let (mut have_tx, mut have_tps) = (false, false);
    for line in stdout.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("number of transactions actually processed:") {
            result.transactions = rest
                .split_whitespace()
                .next()?
                .split('/')
                .next()?
                .parse()
                .ok()?;
            have_tx = true;
        } else if let Some(rest) = line.strip_prefix("latency average =") {
            result.latency_avg_ms = rest.split_whitespace().next()?.parse().ok()?;
        } else if let Some(rest) = line.strip_prefix("tps =")
            && line.contains("without initial connection time")
        {
            result.tps = rest.split_whitespace().next()?.parse().ok()?;
            have_tps = true;
        }
    }
    (have_tx && have_tps).then_some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG15: &str = "pgbench (15.14 (Debian 15.14-0+deb12u1))
transaction type: bench-results/api.sql
scaling factor: 1
query mode: prepared
number of clients: 16
number of threads: 2
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 41234
number of failed transactions: 0 (0.000%)
latency average = 3.876 ms
initial connection time = 21.357 ms
tps = 4127.901234 (without initial connection time)
";

    #[test]
    fn reads_transactions_latency_and_tps() {
        let r = parse_output(PG15, 16).expect("parsed");
        assert_eq!(r.transactions, 41_234);
        assert_eq!(r.clients, 16);
        assert!((r.tps - 4127.901234).abs() < 1e-9);
        assert!((r.latency_avg_ms - 3.876).abs() < 1e-9);
    }

    #[test]
    fn refuses_a_report_without_its_figures() {
        assert_eq!(parse_output("pgbench: error: connection failed", 1), None);
        let no_tps: String = PG15
            .lines()
            .filter(|l| !l.starts_with("tps"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(parse_output(&no_tps, 16), None);
    }
}
