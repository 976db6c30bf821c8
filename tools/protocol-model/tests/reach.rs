//! A proof over a space that never crashes would be no proof. The safe model within the
//! test bounds does reach every kind of fault, the FAILED state, and the end where
//! every order is paid: the "no counterexample" of `variants.rs` covers those states.

use protocol_model::state::{RowState, State};
use protocol_model::steps::Step;
use protocol_model::{Bounds, ProtocolModel, Variant};
use stateright::{Checker, Model, Property};

/// The safe model with `sometimes` properties instead of the safety ones.
struct Reach(ProtocolModel);

impl Model for Reach {
    type State = State;
    type Action = Step;
    fn init_states(&self) -> Vec<State> {
        self.0.init_states()
    }
    fn actions(&self, s: &State, out: &mut Vec<Step>) {
        self.0.actions(s, out);
    }
    fn next_state(&self, s: &State, step: Step) -> Option<State> {
        self.0.next_state(s, step)
    }
    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::sometimes("API crash", |_, s: &State| s.faults.crashed & 1 != 0),
            Property::sometimes("relay crash", |_, s: &State| {
                s.faults.crashed & (2 | 4) != 0
            }),
            Property::sometimes("consumer crash", |_, s: &State| {
                s.faults.crashed & (8 | 16) != 0
            }),
            Property::sometimes("lost ack", |_, s: &State| s.faults.lost_acks > 0),
            Property::sometimes("refused send", |_, s: &State| s.faults.refused_sends > 0),
            Property::sometimes("slow relay", |_, s: &State| s.faults.slow_relays > 0),
            Property::sometimes("duplicate delivery", |_, s: &State| s.faults.duplicates > 0),
            Property::sometimes("rebalance", |_, s: &State| s.faults.rebalances > 0),
            Property::sometimes("Redis loss", |_, s: &State| s.faults.redis_losses > 0),
            Property::sometimes("a FAILED row", |_, s: &State| {
                s.outbox
                    .iter()
                    .flatten()
                    .any(|r| r.state == RowState::Failed)
            }),
            Property::sometimes("two crashes, both orders paid", |m: &Reach, s: &State| {
                s.faults.crashes == 2 && s.payments[..2] == [1, 1] && m.0.at_rest(s)
            }),
        ]
    }
}

#[test]
fn the_safe_model_reaches_every_fault_and_the_end() {
    let checker = Reach(ProtocolModel::new(Variant::Safe, Bounds::test(1)))
        .checker()
        .spawn_bfs()
        .join();
    for property in checker.model().properties() {
        assert!(
            checker.discovery(property.name).is_some(),
            "never reached: {}",
            property.name
        );
    }
}
