//! `make drills-scale-out`: N order-services and M payment-services under k6, one of each
//! killed -9 mid-run (`failure_drills::scale_out`). Prints the outcome, saves it as
//! drill-results/scale-out.md, exits 1 unless it holds.
//!
//! Variables: ORDER_SERVICES (2), PAYMENT_SERVICES (2), RATE (40 orders/s), DURATION
//! (60 s), KEYS (40), EVENTS_PER_KEY (8).
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use failure_drills::scale_out::{self, ScaleOut};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = ScaleOut::from_env();
    println!("scale-out drill: {settings:?}");
    let outcome = match scale_out::run(settings).await {
        Ok(outcome) => outcome,
        Err(e) => {
            println!("FAILED to run: {e}");
            return ExitCode::from(2);
        }
    };
    let doc = scale_out::markdown(&outcome, &failure_drills::load_average());
    println!("{doc}");
    let path = test_support::repo_root().join("drill-results/scale-out.md");
    if let Err(e) = std::fs::write(&path, &doc) {
        println!("could not write {}: {e}", path.display());
    }
    if outcome.holds() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
