//! Checks the safe protocol and every variant, and prints for each: states explored,
//! depth, time, the result, and each counterexample's trace (docs/en/12-model-check.md).
//!
//! `protocol-model` runs the bounds of `make test`; `protocol-model --deep` (or
//! `MODEL_DEPTH=deep`, as `make model-check` does) the deeper ones. Names of variants
//! after the options check only those (`protocol-model claim-by-cursor`);
//! `--keys=N`, `--faults=N` and `--cap=N` change those bounds.
//! Exits 1 if a variant did not show what it is expected to show.
#![allow(clippy::print_stdout)]

use protocol_model::run::Stop;
use protocol_model::{Bounds, Expected, Variant, check};

fn option(args: &[String], name: &str) -> Option<usize> {
    args.iter()
        .find_map(|a| a.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let deep = args.iter().any(|a| a == "--deep")
        || std::env::var("MODEL_DEPTH").is_ok_and(|v| v == "deep");
    let mut variants: Vec<Variant> = Vec::new();
    for arg in args.iter().filter(|a| !a.starts_with("--")) {
        match Variant::parse(arg) {
            Some(v) => variants.push(v),
            None => {
                let names: Vec<&str> = Variant::ALL.iter().map(|v| v.name()).collect();
                eprintln!(
                    "protocol-model: unknown variant {arg:?}; one of {}",
                    names.join(", ")
                );
                std::process::exit(2);
            }
        }
    }
    if variants.is_empty() {
        variants = Variant::ALL.to_vec();
    }
    let only_keys = option(&args, "--keys");
    let mut failed = Vec::new();
    for variant in variants {
        for &keys in variant.keys() {
            if only_keys.is_some_and(|k| k != usize::from(keys)) {
                continue;
            }
            let mut bounds = if deep {
                Bounds::deep(keys)
            } else {
                Bounds::test(keys)
            };
            if let Some(n) = option(&args, "--faults").and_then(|n| u8::try_from(n).ok()) {
                bounds.faults = n;
                bounds.crashes = n;
            }
            if let Some(n) = option(&args, "--cap") {
                bounds.state_cap = n;
            }
            // Breadth-first, so a counterexample is a shortest one. A variant expected to
            // break a property stops at its counterexample; the others explore everything.
            let stop = match variant.expected() {
                Expected::Breaks(_) => Stop::AtExpected,
                Expected::Holds | Expected::Harmless(_) => Stop::Exhaustive,
            };
            // One thread: stateright's breadth-first search reports its depth exactly
            // only on one (with several, the shared maximum is updated racily).
            let outcome = check(variant, bounds, stop, 1);
            println!("{}", outcome.report());
            if !outcome.as_expected() {
                failed.push(format!("{} ({keys} key(s))", variant.name()));
            }
        }
    }
    if failed.is_empty() {
        println!("every variant showed what it is expected to show");
    } else {
        println!("NOT AS EXPECTED: {}", failed.join(", "));
        std::process::exit(1);
    }
}
