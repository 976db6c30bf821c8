//! The reliable-messaging protocol as a model, checked by `stateright`
//! (docs/en/12-model-check.md).
//!
//! The drills (`make drills`) try one fault at a time on the real processes. This crate
//! tries every interleaving of the chain within bounds: the API with its two requests,
//! two relays, the broker's partition (acks lost or late), two consumers of one group
//! (rebalance), Redis (entries lost) and both databases; any busy process may crash
//! between any two of its steps. It checks four safety properties
//! ([`properties::NAMES`]) for the safe protocol and for each unsafe variant
//! ([`Variant`]), and prints a counterexample trace with the code's step names.
//!
//! - `config.rs`: variants and bounds;
//! - `state.rs`: one state of the chain;
//! - `steps.rs`: the steps, each with the code function that does it;
//! - `model.rs`: the transitions;
//! - `properties.rs`: what must hold;
//! - `trace.rs`: a counterexample in words;
//! - `run.rs`: a run of the checker and its report.

pub mod config;
pub mod model;
pub mod properties;
pub mod run;
pub mod state;
pub mod steps;
pub mod trace;

pub use config::{Bounds, Expected, Variant};
pub use model::ProtocolModel;
pub use run::{Outcome, check};
