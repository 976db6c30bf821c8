//! `make soak`: the whole chain under steady load for DURATION with a scripted fault
//! schedule, on a stack of its own (`failure_drills::soak`). Prints the report, saves it
//! as drill-results/soak.md, exits 1 unless clean.
//!
//! Variables: DURATION (60m; `8m`, `90s`, `1h`), RATE (20 orders/s).
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use failure_drills::soak::{self, Soak};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = Soak::from_env();
    println!("soak: {settings:?}");
    let outcome = match soak::run(settings).await {
        Ok(outcome) => outcome,
        Err(e) => {
            println!("FAILED to run: {e}");
            return ExitCode::from(2);
        }
    };
    let doc = soak::markdown(&outcome);
    println!("{doc}");
    let path = test_support::repo_root().join("drill-results/soak.md");
    if let Err(e) = std::fs::write(&path, &doc) {
        println!("could not write {}: {e}", path.display());
    }
    if outcome.holds() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
