//! What must hold. Every property is an `always` over states; none relies on
//! `eventually`, which does not see through the retry and lease loops (a lease that runs
//! out and is claimed again is a cycle, and stateright reads no cycle as an ending).
//!
//! Loss is judged **at rest**: in a state where no actor has a step of its own left (no
//! request, claim, send, lease or message in flight, nothing left to poll), only faults.
//! The fault budget is finite, so every run reaches rest; an order that is accepted and
//! unpaid there is lost for good, not merely late.

use crate::state::{MAX_INTENTS, State};

pub const NO_LOSS: &str = "no accepted order lost";
pub const NO_DOUBLE_EFFECT: &str = "no effect applied twice";
pub const PER_KEY_ORDER: &str = "per-key order kept in publication and effects";
pub const OFFSET_SAFE: &str = "stored offset never passes an unapplied message";
/// Not a safety property: a bound. Found means some run filled the partition's
/// `MAX_LOG` records, so the sends past it were not explored.
pub const LOG_FULL: &str = "bound reached: the partition is full";

/// The safety properties, in the order reports list them. The model checks each as an
/// `always` over its states (`ProtocolModel::properties`), and `LOG_FULL` as a
/// `sometimes`.
pub const NAMES: [&str; 4] = [NO_LOSS, NO_DOUBLE_EFFECT, PER_KEY_ORDER, OFFSET_SAFE];

/// At rest, every committed order has its payment.
pub fn no_accepted_order_lost(s: &State, at_rest: bool) -> bool {
    s.accepted().all(|(o, _)| s.payments[usize::from(o)] > 0) || !at_rest
}

/// Per client order: at most one payment row and one provider charge, over every order
/// row made for it (a retry without a key makes a second row: a double as well).
pub fn no_effect_applied_twice(s: &State) -> bool {
    (0..MAX_INTENTS as u8).all(|intent| {
        let (mut payments, mut charges) = (0u8, 0u8);
        for (o, row) in s.orders.iter().enumerate() {
            if row.is_some_and(|r| r.intent == intent) {
                payments += s.payments[o];
                charges += s.charges[o];
            }
        }
        payments <= 1 && charges <= 1
    })
}

/// A key's events reach the partition (first copies) and take effect in `seq` order.
pub fn per_key_order_kept(s: &State) -> bool {
    !s.publication_out_of_order && !s.effects_out_of_order
}

/// Every record before the group's committed offset has its effect applied.
pub fn stored_offset_never_passes_unapplied(s: &State) -> bool {
    s.log()
        .iter()
        .take(usize::from(s.committed_offset))
        .all(|&e| s.payments[usize::from(e)] > 0)
}
