//! Outbox claim strategies side by side: runs `shared/outbox/examples/claim_bench.rs`
//! (`make bench-claim`), built in release mode, and reads its table.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::process::Command;

use crate::{Settings, progress};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimRow {
    pub strategy: String,
    pub relays: u32,
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
}

pub async fn measure(settings: &Settings) -> anyhow::Result<Vec<ClaimRow>> {
    let binary = settings.bin_dir.join("examples/claim_bench");
    if !binary.exists() {
        bail!(
            "{} not found: `cargo build --release -p outbox --example claim_bench` (make bench does)",
            binary.display()
        );
    }
    progress("claim: SKIP LOCKED vs optimistic lock, 1/2/4 relays (claim_bench)");
    let run = Command::new(&binary)
        .env("BENCH_ROWS", settings.claim_rows.to_string())
        .env("KAFKA_BOOTSTRAP_SERVERS", &settings.kafka_bootstrap_servers)
        .env("TEST_POSTGRES_URL", &settings.postgres_server)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(900), run)
        .await
        .context("claim_bench did not finish in 15 minutes")??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "claim_bench failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let rows = parse_table(&stdout);
    if rows.is_empty() {
        bail!("claim_bench printed no result rows:\n{stdout}");
    }
    Ok(rows)
}

/// `| SkipLocked | 2 | 5000 | 1.23 | 4065 |` → a row; headers and rules are skipped.
pub fn parse_table(stdout: &str) -> Vec<ClaimRow> {
    stdout
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line
                .trim()
                .strip_prefix('|')?
                .strip_suffix('|')?
                .split('|')
                .map(str::trim)
                .collect();
            let [strategy, relays, rows, seconds, rate] = cells.as_slice() else {
                return None;
            };
            Some(ClaimRow {
                strategy: (*strategy).to_owned(),
                relays: relays.parse().ok()?,
                rows: rows.parse().ok()?,
                seconds: seconds.parse().ok()?,
                rows_per_s: rate.parse().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rows_of_claim_bench_and_skips_its_header() {
        let out = "| strategy | relays | rows | seconds | rows/s |\n|---|---|---|---|---|\n\
                   | SkipLocked | 1 | 5000 | 2.50 | 2000 |\n| OptimisticLock | 4 | 5000 | 4.00 | 1250 |\n";
        let rows = parse_table(out);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[1],
            ClaimRow {
                strategy: "OptimisticLock".into(),
                relays: 4,
                rows: 5000,
                seconds: 4.0,
                rows_per_s: 1250.0
            }
        );
    }
}
