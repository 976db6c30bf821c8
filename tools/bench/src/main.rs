//! `bench`: measures the project and the ceilings beneath it in one run on this
//! machine, and prints the ratios (docs/en/08-load-and-benchmark.md). `make bench`
//! builds everything in release mode and runs it.
//!
//! Variables (all optional): `BENCH_SECONDS`, `BENCH_CONCURRENCY`, `BENCH_RATES`,
//! `BENCH_RELAY_EVENTS`, `BENCH_CONSUMER_MESSAGES`, `BENCH_CLAIM_ROWS`, `BENCH_ONLY`,
//! `BENCH_OUT`, `BENCH_BIN_DIR`, `BENCH_PORT_BASE`; see `settings.rs`.

// A command-line tool: its stdout is the result table.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match bench::Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    match bench::run(&settings).await {
        Ok(written) => {
            print!("{}", written.markdown);
            println!("\nresults: {}", written.paths.join(", "));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::from(1)
        }
    }
}
