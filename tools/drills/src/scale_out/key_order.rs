//! Per-key order, checked from the data.
//!
//! An order id carries one event per topic, so the orders of a k6 run cannot show that
//! a key's events stay in order. The scale-out drill therefore adds keys that carry
//! several events each: `EVENTS_PER_KEY` numbered events per key, written into the
//! order database's outbox with `outbox::enqueue` (the same call the API makes), back to
//! back, each in its own transaction and only after the key's previous one committed. The
//! order-services' relays publish them with the orders, to a topic of the drill's own;
//! the drill's `sequence-consumer` processes apply them through the shared consumer
//! loop and the inbox, one effect row per event.
//!
//! Two checks, both from what was stored, never from logs:
//! - **on the topic**: each key's events, read back in offset order, are 0, 1, 2, …;
//!   a copy re-sent after a relay died may repeat the event just before it (0, 1, 1, 2),
//!   never an earlier one, and none is missing;
//! - **in the effects**: each key's effect rows, in the order they were committed, are
//!   exactly 0, 1, 2, … (the inbox absorbs the copies).
//!
//! The topic check goes red when the claim's per-key clause is removed
//! (`shared/outbox/src/relay/claim.rs`): two relays then send one key's neighbouring
//! events side by side, and the later one can land first.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use crate::DrillError;

/// The event type of the drill's numbered events.
pub const EVENT_TYPE: &str = "SequenceStep";

/// The effect table of the `sequence-consumer`: one row per applied event, `id` in
/// commit order per key (a key's events are applied one after another).
pub const EFFECTS_TABLE: &str = "CREATE TABLE IF NOT EXISTS sequence_effects (
    id bigserial PRIMARY KEY,
    message_key text NOT NULL,
    step integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp())";

/// Writes `events` numbered events for each of `keys` keys into the outbox of
/// `orders_db`, bound for `topic`. The keys start one after another, spread over
/// `spread`; each key then writes its events back to back, each in its own transaction
/// and only after the previous one committed. A key's events are therefore unsent side
/// by side, and two relays could each claim one of them, were it not for the claim's
/// per-key clause.
pub async fn write_sequences(
    orders_db: &PgPool,
    topic: &str,
    keys: usize,
    events: u32,
    spread: Duration,
) -> Result<(), DrillError> {
    let mut writers = tokio::task::JoinSet::new();
    for k in 0..keys {
        let (pool, topic) = (orders_db.clone(), topic.to_owned());
        let start = spread.mul_f64(k as f64 / keys.max(1) as f64);
        writers.spawn(async move {
            tokio::time::sleep(start).await;
            let key = format!("sequence-{k:03}");
            for step in 0..events {
                let message = outbox::OutboxMessage::new(
                    &topic,
                    &key,
                    EVENT_TYPE,
                    json!({"key": key, "step": step}),
                );
                let mut tx = pool.begin().await?;
                outbox::enqueue(&mut tx, &message).await?;
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(())
        });
    }
    while let Some(done) = writers.join_next().await {
        done.map_err(DrillError::unexpected)?
            .map_err(|e| DrillError::Unexpected(format!("enqueue a sequence event: {e}")))?;
    }
    Ok(())
}

/// What the two checks found.
#[derive(Debug, Default, Clone)]
pub struct KeyOrderReport {
    pub keys: usize,
    /// Events read on the topic, copies included.
    pub on_topic: u64,
    /// Copies on the topic (a resend of the event just before): allowed, counted.
    pub topic_copies: u64,
    /// Effect rows committed.
    pub effects: u64,
    /// Each violation, in words: `key: what was expected, what came`.
    pub violations: Vec<String>,
}

impl KeyOrderReport {
    pub fn holds(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Checks one key's sequence as stored. `copies_allowed`: the topic may repeat the
/// event just before (a resend); the effects may not.
fn check_sequence(
    key: &str,
    where_: &str,
    steps: &[u32],
    events: u32,
    copies_allowed: bool,
    report: &mut KeyOrderReport,
) {
    let mut next = 0;
    for &step in steps {
        if step == next {
            next += 1;
        } else if copies_allowed && next > 0 && step == next - 1 {
            report.topic_copies += 1;
        } else {
            report.violations.push(format!(
                "{key} {where_}: expected step {next}, found {step} (sequence {steps:?})"
            ));
            return;
        }
    }
    if next != events {
        report.violations.push(format!(
            "{key} {where_}: {next} of {events} steps (sequence {steps:?})"
        ));
    }
}

/// Reads `topic` from the beginning to its end (bounded by `within`) and the effect
/// rows of `effects_db`, and checks each of `keys` keys on both.
pub async fn check(
    bootstrap_servers: &str,
    topic: &str,
    effects_db: &PgPool,
    keys: usize,
    events: u32,
    within: Duration,
) -> Result<KeyOrderReport, DrillError> {
    let on_topic = read_topic(bootstrap_servers, topic, within).await?;
    let rows: Vec<(String, i32)> =
        sqlx::query_as("SELECT message_key, step FROM sequence_effects ORDER BY id")
            .fetch_all(effects_db)
            .await
            .map_err(|e| DrillError::Unexpected(format!("read sequence_effects: {e}")))?;
    let mut applied: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (key, step) in rows {
        applied
            .entry(key)
            .or_default()
            .push(u32::try_from(step).unwrap_or(u32::MAX));
    }
    let mut report = KeyOrderReport {
        keys,
        on_topic: on_topic.values().map(|v| v.len() as u64).sum(),
        effects: applied.values().map(|v| v.len() as u64).sum(),
        ..KeyOrderReport::default()
    };
    for k in 0..keys {
        let key = format!("sequence-{k:03}");
        let published = on_topic.get(&key).map_or(&[][..], Vec::as_slice);
        check_sequence(&key, "on the topic", published, events, true, &mut report);
        let effects = applied.get(&key).map_or(&[][..], Vec::as_slice);
        check_sequence(&key, "in the effects", effects, events, false, &mut report);
    }
    Ok(report)
}

/// Every event of `topic`, per key, in offset order (one key lives on one partition).
async fn read_topic(
    bootstrap_servers: &str,
    topic: &str,
    within: Duration,
) -> Result<BTreeMap<String, Vec<u32>>, DrillError> {
    let records = kafka_config::read_topic_to_end(bootstrap_servers, topic, within)
        .await
        .map_err(|e| DrillError::Unexpected(format!("read {topic}: {e}")))?;
    let mut per_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for record in records {
        let payload: serde_json::Value =
            serde_json::from_slice(record.payload.as_deref().unwrap_or_default())
                .map_err(|e| DrillError::Unexpected(format!("sequence payload: {e}")))?;
        let key = payload["key"].as_str().unwrap_or_default().to_owned();
        let step = payload["step"].as_u64().unwrap_or(u64::MAX);
        per_key
            .entry(key)
            .or_default()
            .push(u32::try_from(step).unwrap_or(u32::MAX));
    }
    Ok(per_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(steps: &[u32], copies_allowed: bool) -> KeyOrderReport {
        let mut report = KeyOrderReport::default();
        check_sequence("k", "here", steps, 4, copies_allowed, &mut report);
        report
    }

    #[test]
    fn in_order_holds() {
        assert!(run(&[0, 1, 2, 3], false).holds());
    }

    #[test]
    fn a_resend_of_the_event_just_before_is_a_copy_on_the_topic_only() {
        let topic = run(&[0, 1, 1, 2, 3], true);
        assert!(topic.holds());
        assert_eq!(topic.topic_copies, 1);
        assert!(!run(&[0, 1, 1, 2, 3], false).holds());
    }

    #[test]
    fn an_overtaking_event_or_a_gap_is_a_violation() {
        assert!(!run(&[0, 2, 1, 3], true).holds());
        assert!(!run(&[0, 1, 3, 2], true).holds());
        assert!(!run(&[0, 1, 2], true).holds());
        // An earlier event again after a later one went out: the key's order broke.
        assert!(!run(&[0, 1, 2, 1, 3], true).holds());
    }
}
