//! Failure drills: each starts what it breaks, injects one fault, lets the system recover,
//! then **counts** — what the producer was told was stored versus what a fresh reader
//! finds, orders accepted versus payments applied — so a claim of the study note becomes
//! a number.
//!
//! - [`store`]: the store-stage drills on a Kafka cluster of their own (acks, min ISR and
//!   its alerts, replication factor, unclean election, kill -9, the outbox relay through a
//!   leader loss); `make drills-replication`.
//! - [`matrix`]: the failure matrix (docs/en/09-failure-matrix.md) against the real
//!   services, each fault with the safe configuration and its unsafe teaching toggle;
//!   `make drills`.
//! - [`scale_out`]: several order- and payment-services under k6, one of each killed -9;
//!   `make drills-scale-out`.
//! - [`soak`]: the whole chain under steady load with a scripted fault schedule;
//!   `make soak`.
//!
//! What they share: [`cluster`] (a Kafka cluster of the drill's own, via
//! `infra/native/kafka.sh`), [`environment`] (a fresh world of databases, topics and
//! groups per drill), [`process`] (the services as child processes), [`proxy`] (a
//! connection that can be cut), [`load`] (orders over HTTP), [`settle`] (waiting for the
//! chain to come to rest) and [`DrillError`].

pub mod cluster;
pub mod environment;
pub mod error;
pub mod k6;
pub mod load;
pub mod matrix;
pub mod native_script;
pub mod process;
pub mod proxy;
pub mod scale_out;
pub mod settle;
pub mod soak;
pub mod store;

use std::path::PathBuf;
use std::process::ExitCode;

pub use environment::DrillEnv;
pub use error::DrillError;
pub use matrix::Row;

/// The 1, 5 and 15 minute load averages, "a b c": printed with every stamp, since
/// figures from a busy machine are lower bounds.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `drill-results/` (git-ignored), where each drill saves its report, with `logs/` inside.
pub fn results_dir() -> PathBuf {
    let dir = test_support::repo_root().join("drill-results");
    let _ = std::fs::create_dir_all(dir.join("logs"));
    dir
}

/// The end of `make drills-scale-out` and `make soak`: print the Markdown report that
/// `report` makes of the outcome, save it as `drill-results/<file>`, and exit 0 only if
/// what must hold held (`report`'s second half); 2 if the drill could not run at all.
#[allow(clippy::print_stdout)] // the binaries' report goes to stdout
pub fn finish<T>(
    outcome: Result<T, DrillError>,
    file: &str,
    report: impl FnOnce(&T) -> (String, bool),
) -> ExitCode {
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            println!("FAILED to run: {e}");
            return ExitCode::from(2);
        }
    };
    let (doc, holds) = report(&outcome);
    println!("{doc}");
    let path = results_dir().join(file);
    if let Err(e) = std::fs::write(&path, &doc) {
        println!("could not write {}: {e}", path.display());
    }
    if holds {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A run's timeline (seconds since its start, what happened) as a Markdown table: the
/// first part of the scale-out and soak reports.
pub fn timeline_markdown(timeline: &[(f64, String)]) -> String {
    let mut table = String::from("| t (s) | event |\n|---:|---|\n");
    for (t, what) in timeline {
        table.push_str(&format!("| {t:.0} | {what} |\n"));
    }
    table
}
