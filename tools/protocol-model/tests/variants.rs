//! The model can prove and the model can fail: the safe protocol has no counterexample
//! within the test bounds (every state explored), and each unsafe variant has one of
//! the property it is expected to break, found by the checker and printed with its
//! trace. The variants found harmless are checked exhaustively too.

use protocol_model::properties::{NO_DOUBLE_EFFECT, NO_LOSS, OFFSET_SAFE, PER_KEY_ORDER};
use protocol_model::run::{Outcome, Stop};
use protocol_model::{Bounds, Expected, Variant, check};

/// One thread per run: the test harness already runs the tests side by side.
fn run(variant: Variant, bounds: Bounds, stop: Stop) -> Outcome {
    let outcome = check(variant, bounds, stop, 1);
    eprintln!("{}", outcome.report());
    outcome
}

fn breaks(variant: Variant, bounds: Bounds, property: &'static str) -> Outcome {
    assert_eq!(variant.expected(), Expected::Breaks(property));
    let outcome = run(variant, bounds, Stop::AtExpected);
    let found = outcome
        .found(property)
        .unwrap_or_else(|| panic!("{}: no counterexample of {property:?}", variant.name()));
    assert!(!found.steps.is_empty());
    outcome
}

fn holds(variant: Variant, bounds: Bounds) {
    assert!(variant.keys().contains(&bounds.keys));
    let outcome = run(variant, bounds, Stop::Exhaustive);
    assert!(
        !outcome.capped,
        "{}: the state cap cut the run short",
        variant.name()
    );
    assert!(
        outcome.counterexamples.is_empty(),
        "{}: {}",
        variant.name(),
        outcome.report()
    );
}

#[test]
fn the_safe_protocol_has_no_counterexample() {
    holds(Variant::Safe, Bounds::test(2));
}

#[test]
fn the_safe_protocol_keeps_one_keys_order() {
    holds(Variant::Safe, Bounds::test(1));
}

#[test]
fn offset_before_effect_loses_an_order() {
    let outcome = breaks(Variant::OffsetBeforeEffect, Bounds::test(2), NO_LOSS);
    let trace = &outcome
        .found(NO_LOSS)
        .map(|c| c.steps.join("\n"))
        .unwrap_or_default();
    // The offset went ahead at the poll; the shortest loss then needs one fault that
    // drops the message in hand: a crash, or a rebalance that revokes it unstarted.
    assert!(trace.contains("before the effect"), "{trace}");
    assert!(
        trace.contains("CRASH consumer") || trace.contains("rebalance"),
        "{trace}"
    );
}

#[test]
fn offset_before_effect_stores_an_offset_past_an_unapplied_message() {
    let outcome = check(
        Variant::OffsetBeforeEffect,
        Bounds::test(2),
        Stop::AtExpected,
        1,
    );
    // Stopped at the loss; the offset property broke on the way, the moment it polled.
    assert!(outcome.found(OFFSET_SAFE).is_some(), "{}", outcome.report());
}

#[test]
fn every_dedup_layer_off_applies_an_effect_twice() {
    breaks(Variant::DedupOff, Bounds::test(2), NO_DOUBLE_EFFECT);
}

#[test]
fn inbox_and_fast_path_off_is_absorbed_by_the_business_and_provider_keys() {
    assert!(matches!(
        Variant::InboxAndFastPathOff.expected(),
        Expected::Harmless(_)
    ));
    holds(Variant::InboxAndFastPathOff, Bounds::test(2));
}

#[test]
fn direct_mode_loses_an_order_at_a2() {
    let outcome = breaks(Variant::DirectCrashA2, Bounds::test(2), NO_LOSS);
    let trace = outcome
        .found(NO_LOSS)
        .map(|c| c.steps.join("\n"))
        .unwrap_or_default();
    assert!(trace.contains("CRASH API at A2"), "{trace}");
}

#[test]
fn a_retry_without_key_makes_a_second_order() {
    let outcome = breaks(Variant::RetryWithoutKey, Bounds::test(2), NO_DOUBLE_EFFECT);
    let trace = outcome
        .found(NO_DOUBLE_EFFECT)
        .map(|c| c.steps.join("\n"))
        .unwrap_or_default();
    assert!(trace.contains("CRASH API at A1"), "{trace}");
    assert!(trace.contains("WITHOUT Idempotency-Key"), "{trace}");
}

#[test]
fn a_claim_by_cursor_skips_a_row_that_commits_late() {
    let outcome = breaks(Variant::ClaimByCursor, Bounds::test(2), NO_LOSS);
    let steps = &outcome
        .found(NO_LOSS)
        .map(|c| c.steps.clone())
        .unwrap_or_default();
    // The cursor passes o1 while o0, inserted first, is not committed yet.
    let claim = steps.iter().position(|s| s.contains("claims o1"));
    let late = steps.iter().position(|s| s.contains("COMMIT order o0"));
    assert!(
        matches!((claim, late), (Some(c), Some(l)) if c < l),
        "{steps:#?}"
    );
}

#[test]
fn marking_before_the_send_loses_an_order() {
    let outcome = breaks(Variant::MarkBeforeSend, Bounds::test(2), NO_LOSS);
    let trace = outcome
        .found(NO_LOSS)
        .map(|c| c.steps.join("\n"))
        .unwrap_or_default();
    assert!(trace.contains("R1 (marked SENT, not sent)"), "{trace}");
}

#[test]
fn a_lease_without_version_check_costs_copies_not_orders() {
    assert!(matches!(
        Variant::LeaseWithoutVersion.expected(),
        Expected::Harmless(_)
    ));
    holds(Variant::LeaseWithoutVersion, Bounds::test(1));
}

#[test]
fn a_claim_without_the_key_clause_reorders_a_key() {
    breaks(Variant::NoKeyCheck, Bounds::test(1), PER_KEY_ORDER);
}
