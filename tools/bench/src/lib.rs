//! The benchmark: the project against the machine's own ceilings, in one run
//! (docs/en/08-load-and-benchmark.md).
//!
//! - `measure/api.rs`      order API orders/s vs pgbench doing the same two inserts
//! - `measure/relay.rs`    relay events/s vs a raw producer with the same settings
//! - `measure/consumer.rs` consumer messages/s vs pgbench doing the dedup + payment,
//!   at each concurrency of a sweep, pgbench at the same concurrency
//! - `measure/saturation.rs` the chain's saturation rate (bisection over fixed arrival
//!   rates: achieved ≥ 95 % and every order settled) vs the API's own
//! - `measure/e2e.rs`      order accepted → payment applied at fixed rates (and at half
//!   the chain's saturation), NOTIFY vs polling only; RSS of both services
//! - `cpu.rs`              where the CPU went during a window (machine, services,
//!   Postgres, brokers)
//! - `measure/claim.rs`    the outbox claim strategies (runs `claim_bench`)
//! - `report/`             JSON, Markdown, and an HTML page with SVG plots
//!
//! Everything runs on loopback against the shared stack, in databases, topics and
//! consumer groups named after the run; the databases are dropped at the end.

pub mod cpu;
pub mod events;
pub mod http_load;
pub mod measure;
pub mod pgbench;
pub mod report;
pub mod services;
pub mod settings;
pub mod stack;
pub mod stats;

use std::future::Future;

pub use report::{Results, Written};
pub use settings::{Measurement, Settings};

/// One progress line on stderr (stdout is the result table).
pub fn progress(message: &str) {
    eprintln!(
        "[bench {}] {message}",
        chrono::Local::now().format("%H:%M:%S")
    );
}

/// Runs the selected measurements one after another (never two at once: they would
/// measure each other), writes the results and returns where they are. A measurement
/// that fails is recorded as an error and the others still run.
pub async fn run(settings: &Settings) -> anyhow::Result<Written> {
    let mut results = Results::start(settings);
    if settings.wants(Measurement::Api) {
        results.api = attempt("api", &mut results.errors, measure::api::measure(settings)).await;
    }
    if settings.wants(Measurement::Relay) {
        results.relay = attempt(
            "relay",
            &mut results.errors,
            measure::relay::measure(settings),
        )
        .await;
    }
    if settings.wants(Measurement::Consumer) {
        results.consumer = attempt(
            "consumer",
            &mut results.errors,
            measure::consumer::measure(settings),
        )
        .await;
    }
    if settings.wants(Measurement::Saturation) {
        results.saturation = attempt(
            "saturation",
            &mut results.errors,
            measure::saturation::measure(settings),
        )
        .await;
    }
    if settings.wants(Measurement::E2e) {
        // The latency target's rate: half of the chain's saturation, measured just now.
        let half = results.saturation.as_ref().map(|s| s.chain.saturation / 2);
        results.e2e = attempt(
            "e2e",
            &mut results.errors,
            measure::e2e::measure(settings, half),
        )
        .await;
    }
    if settings.wants(Measurement::Claim) {
        results.claim = attempt(
            "claim",
            &mut results.errors,
            measure::claim::measure(settings),
        )
        .await;
    }
    match stack::drop_run_databases(settings).await {
        Ok(n) => progress(&format!("dropped the run's {n} databases")),
        Err(e) => progress(&format!("could not drop the run's databases: {e:#}")),
    }
    results.finish();
    report::write(&results, &settings.out_dir)
}

async fn attempt<T>(
    name: &str,
    errors: &mut Vec<String>,
    measurement: impl Future<Output = anyhow::Result<T>>,
) -> Option<T> {
    match measurement.await {
        Ok(result) => Some(result),
        Err(e) => {
            progress(&format!("{name}: FAILED: {e:#}"));
            errors.push(format!("{name}: {e:#}"));
            None
        }
    }
}
