//! `make soak`: the whole chain under steady load for DURATION with a scripted fault
//! schedule, on a stack of its own (`drills::soak`). Prints the report, saves it
//! as drill-results/soak.md, exits 1 unless clean.
//!
//! Variables: DURATION (60m; `8m`, `90s`, `1h`), RATE (20 orders/s).
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use drills::soak::{self, Soak};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = Soak::from_env();
    println!("soak: {settings:?}");
    drills::finish(soak::run(settings).await, "soak.md", |outcome| {
        (soak::markdown(outcome), outcome.holds())
    })
}
