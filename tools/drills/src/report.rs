//! What a drill leaves behind: its report under `drill-results/`, stamped with the
//! machine's load, and the exit code `make` sees.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::error::DrillError;

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
