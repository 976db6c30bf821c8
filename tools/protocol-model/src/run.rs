//! One run of the checker over one variant, and what it found.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Instant;

use stateright::{Checker, HasDiscoveries, Model};

use crate::config::{Bounds, Expected, Variant};
use crate::model::ProtocolModel;
use crate::properties::{LOG_FULL, NAMES};
use crate::trace;

/// How far a run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Every state within the bounds (the safe model's proof).
    Exhaustive,
    /// Until the variant's expected property has its counterexample (breadth-first:
    /// the shortest one), or the space is exhausted.
    AtExpected,
}

/// A counterexample: the property and its trace in words.
#[derive(Debug, Clone)]
pub struct Counterexample {
    pub property: &'static str,
    pub steps: Vec<String>,
    pub end: String,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub variant: Variant,
    pub bounds: Bounds,
    pub stop: Stop,
    /// Distinct states explored.
    pub states: usize,
    /// Steps from the initial state to the farthest state (breadth-first: the longest
    /// of the shortest paths).
    pub depth: usize,
    pub seconds: f64,
    /// The cap on generated states (`Bounds::state_cap`, counted with repeats, as
    /// stateright counts it) cut the run short.
    pub capped: bool,
    pub counterexamples: Vec<Counterexample>,
    /// Some run filled the partition (`MAX_LOG`): sends past it were not explored.
    pub log_full: bool,
}

impl Outcome {
    pub fn found(&self, property: &str) -> Option<&Counterexample> {
        self.counterexamples.iter().find(|c| c.property == property)
    }

    /// "no counterexample", "counterexample: …", or "harmless: …".
    pub fn verdict(&self) -> String {
        let found: Vec<&str> = self.counterexamples.iter().map(|c| c.property).collect();
        match (self.variant.expected(), found.is_empty()) {
            (Expected::Harmless(reason), true) => format!("no counterexample: harmless, {reason}"),
            (_, true) => "no counterexample".into(),
            (_, false) => format!("counterexample: {}", found.join("; ")),
        }
    }

    /// Did the run show what the variant is expected to show?
    pub fn as_expected(&self) -> bool {
        match self.variant.expected() {
            Expected::Holds | Expected::Harmless(_) => {
                self.counterexamples.is_empty() && !self.capped
            }
            Expected::Breaks(property) => self.found(property).is_some(),
        }
    }

    pub fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "== {} ({})\n   bounds: {}\n   {} states, depth {}, {:.1} s{}{}\n   result: {}",
            self.variant.name(),
            self.variant.setting(),
            self.bounds.describe(),
            self.states,
            self.depth,
            self.seconds,
            match self.stop {
                Stop::Exhaustive => ", exhaustive",
                Stop::AtExpected => ", stopped at the expected counterexample",
            },
            if self.capped {
                " (STATE CAP REACHED)"
            } else {
                ""
            },
            self.verdict()
        );
        if self.log_full {
            let _ = writeln!(out, "   note: {LOG_FULL}");
        }
        for c in &self.counterexamples {
            let _ = writeln!(
                out,
                "   trace breaking \"{}\" ({} steps):",
                c.property,
                c.steps.len()
            );
            for (n, step) in c.steps.iter().enumerate() {
                let _ = writeln!(out, "   {:>3}. {step}", n + 1);
            }
            let _ = writeln!(out, "        end: {}", c.end);
        }
        out
    }
}

/// Checks one variant within `bounds`, breadth-first (so a counterexample is a
/// shortest one), on `threads` threads.
pub fn check(variant: Variant, bounds: Bounds, stop: Stop, threads: usize) -> Outcome {
    let model = ProtocolModel::new(variant, bounds);
    let finish = match (stop, variant.expected()) {
        (Stop::AtExpected, Expected::Breaks(property)) => {
            HasDiscoveries::AnyOf(BTreeSet::from([property]))
        }
        // Exhaustive: wait for every discovery, i.e. explore everything (the `sometimes`
        // bound property is rarely found, and every always-property would have to fail).
        _ => HasDiscoveries::All,
    };
    let started = Instant::now();
    let checker = model
        .checker()
        .threads(threads.max(1))
        .target_state_count(bounds.state_cap)
        .finish_when(finish)
        .spawn_bfs()
        .join();
    let seconds = started.elapsed().as_secs_f64();
    let states = checker.unique_state_count();
    let generated = checker.state_count();
    let mut counterexamples = Vec::new();
    for property in NAMES {
        if let Some(path) = checker.discovery(property) {
            let pairs = path.into_vec();
            let mut steps = Vec::new();
            for window in pairs.windows(2) {
                if let (pre, Some(step)) = (&window[0].0, &window[0].1) {
                    steps.push(trace::describe(&model, pre, step, &window[1].0));
                }
            }
            let end = pairs
                .last()
                .map_or(String::new(), |(s, _)| trace::summary(s));
            counterexamples.push(Counterexample {
                property,
                steps,
                end,
            });
        }
    }
    Outcome {
        variant,
        bounds,
        stop,
        states,
        // stateright counts the initial state as depth 1; steps are one fewer.
        depth: checker.max_depth().saturating_sub(1),
        seconds,
        capped: generated >= bounds.state_cap,
        counterexamples,
        log_full: checker.discovery(LOG_FULL).is_some(),
    }
}
