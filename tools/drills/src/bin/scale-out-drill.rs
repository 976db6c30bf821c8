//! `make drills-scale-out`: N order-services and M payment-services under k6, one of each
//! killed -9 mid-run (`drills::scale_out`). Prints the outcome, saves it as
//! drill-results/scale-out.md, exits 1 unless it holds.
//!
//! Variables: ORDER_SERVICES (2), PAYMENT_SERVICES (2), RATE (40 orders/s), DURATION
//! (60 s), KEYS (40), EVENTS_PER_KEY (8).
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use drills::scale_out::{self, ScaleOut};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = ScaleOut::from_env();
    println!("scale-out drill: {settings:?}");
    drills::finish(scale_out::run(settings).await, "scale-out.md", |outcome| {
        (
            scale_out::markdown(outcome, &drills::load_average()),
            outcome.holds(),
        )
    })
}
