//! A counterexample in words: each step with its actor, what it did, and the code that
//! does it; the crash point a crash hit, named as in the code and the failure matrix.

use crate::model::ProtocolModel;
use crate::state::{Actor, Request, RowState, SendResult, Stage, State};
use crate::steps::Step;

/// The crash point the actor is at in `s`, named as in `CRASH_AT`.
pub fn crash_point(m: &ProtocolModel, s: &State, actor: Actor) -> &'static str {
    match actor {
        Actor::Api => {
            if s.requests
                .iter()
                .any(|r| matches!(r, Request::Committed(_)))
            {
                if m.variant.outbox() {
                    "A1 (committed, not answered)"
                } else {
                    "A2 (committed, event in no send log yet)"
                }
            } else if s.requests.iter().any(|r| matches!(r, Request::Acked(_))) {
                "A1 (sent and acked, not answered)"
            } else if s.requests.iter().any(|r| matches!(r, Request::Logged(_))) {
                "after the send-log line, before the send"
            } else {
                "inside the order's transaction"
            }
        }
        Actor::Relay(r) => {
            let relay = &s.relays[usize::from(r)];
            let sent = relay
                .claimed()
                .filter(|c| c.result != SendResult::Unsent)
                .count();
            let all = relay.claimed().count();
            if relay.marked {
                "R1 (marked SENT, not sent)"
            } else if sent == 0 {
                "R1 (claimed, nothing sent)"
            } else if sent == all {
                "R2 (sent and acked, not marked)"
            } else {
                "R1/R2 (part of the batch sent)"
            }
        }
        Actor::Consumer(c) => {
            let stages: Vec<Stage> = s.consumers[usize::from(c)]
                .msgs()
                .map(|m| m.stage)
                .collect();
            if stages.contains(&Stage::Done) {
                "C2 (effect committed, offset not stored)"
            } else if stages.contains(&Stage::Charged) {
                "C1 (charged, transaction not committed)"
            } else {
                "before the handler (message received)"
            }
        }
    }
}

fn actor_name(actor: Actor) -> String {
    match actor {
        Actor::Api => "API".into(),
        Actor::Relay(r) => format!("relay R{r}"),
        Actor::Consumer(c) => format!("consumer C{c}"),
    }
}

fn event(s: &State, offset: u8) -> u8 {
    s.log[usize::from(offset)]
}

/// One step, in words, from the state before it and the state after it.
pub fn describe(m: &ProtocolModel, pre: &State, step: &Step, post: &State) -> String {
    let what = match *step {
        Step::ApiInsert { intent } => match post.requests[usize::from(intent)] {
            Request::Answered => format!(
                "API: request {intent} again; its Idempotency-Key replays the stored answer, no new order"
            ),
            Request::InTx(o) => {
                let row = post.order(o).copied();
                let retry = if pre.requests[usize::from(intent)] == Request::Failed {
                    if m.variant.idempotency_key() {
                        " (client retry, same key: nothing was committed)"
                    } else {
                        " (client retry WITHOUT Idempotency-Key)"
                    }
                } else {
                    ""
                };
                format!(
                    "API: request {intent}{retry}: BEGIN; INSERT order o{o} (seq {}, key k{}){}",
                    row.map_or(0, |r| r.seq),
                    row.map_or(0, |r| r.key),
                    if m.variant.outbox() {
                        " + outbox row"
                    } else {
                        ""
                    }
                )
            }
            _ => "API: request".into(),
        },
        Step::ApiCommit { intent } => match post.requests[usize::from(intent)] {
            Request::Committed(o) if m.variant.outbox() => {
                format!("API: COMMIT order o{o} + outbox row (PENDING, now visible)")
            }
            Request::Committed(o) => format!("API: COMMIT order o{o} (direct mode: no outbox row)"),
            _ => "API: COMMIT".into(),
        },
        Step::ApiAnswer { intent } => format!("API: answers 201 to request {intent}"),
        Step::DirectLog { intent } => match post.requests[usize::from(intent)] {
            Request::Logged(o) => format!("API: send log gets o{o}'s `pending` line"),
            _ => "API: send log".into(),
        },
        Step::DirectSend { intent } => match pre.requests[usize::from(intent)] {
            Request::Logged(o) => format!(
                "API: sends o{o}, acked at offset {}; send log `acked`",
                pre.log_len
            ),
            _ => "API: send".into(),
        },
        Step::Repush { order } => {
            format!("API re-push job: sends o{order} → offset {}", pre.log_len)
        }
        Step::Claim { relay } => {
            let rows: Vec<String> = post.relays[usize::from(relay)]
                .claimed()
                .map(|c| {
                    let before = pre.row(c.order).map_or("?", |r| {
                        if r.state == RowState::Sending {
                            "SENDING (lease expired)"
                        } else {
                            r.state.name()
                        }
                    });
                    format!("o{} {before} → SENDING v{}", c.order, c.version)
                })
                .collect();
            let cursor = if m.variant.claim_by_cursor() {
                format!("; cursor now seq {}", post.cursor)
            } else {
                String::new()
            };
            format!("relay R{relay}: claims {}{cursor}", rows.join(", "))
        }
        Step::Send { relay } | Step::SendAckLost { relay } | Step::SendRefused { relay } => {
            let pre_relay = &pre.relays[usize::from(relay)];
            let order = pre_relay
                .claimed()
                .find(|c| c.result == SendResult::Unsent)
                .map_or(0, |c| c.order);
            if matches!(step, Step::Send { .. }) {
                format!(
                    "relay R{relay}: sends o{order} → offset {}, acked",
                    pre.log_len
                )
            } else if matches!(step, Step::SendAckLost { .. }) {
                format!(
                    "FAULT relay R{relay}: sends o{order} → offset {}, the ack is lost (the send \"failed\")",
                    pre.log_len
                )
            } else {
                format!(
                    "FAULT relay R{relay}: sends o{order}, the broker refuses it for good (a permanent failure)"
                )
            }
        }
        Step::Mark { relay } => {
            let pre_relay = &pre.relays[usize::from(relay)];
            let rows: Vec<String> = pre_relay
                .claimed()
                .map(|c| {
                    let before = pre.row(c.order).copied();
                    let after = post.row(c.order).copied();
                    match (before, after) {
                        (Some(b), Some(a)) if a == b => format!(
                            "o{} unchanged ({} v{} ≠ claimed v{}: lease lost)",
                            c.order,
                            b.state.name(),
                            b.version,
                            c.version
                        ),
                        (Some(b), Some(a)) => {
                            format!("o{} {} → {}", c.order, b.state.name(), a.state.name())
                        }
                        _ => format!("o{}", c.order),
                    }
                })
                .collect();
            let when = if m.variant.mark_before_send() {
                " BEFORE sending"
            } else {
                ""
            };
            format!("relay R{relay}: marks{when}: {}", rows.join(", "))
        }
        Step::LeaseRunsOut { order } => {
            let holder = pre.relays.iter().position(|r| {
                r.claimed().any(|c| {
                    c.order == order && Some(c.version) == pre.row(order).map(|r| r.version)
                })
            });
            match holder {
                Some(r) => format!(
                    "FAULT relay R{r} is slower than its lease: o{order}'s lease runs out while R{r} holds it"
                ),
                None => format!("time: o{order}'s lease runs out (no live relay holds it)"),
            }
        }
        Step::OperatorRetry { order } => {
            format!("operator: outbox::retry_failed(o{order}): FAILED → PENDING")
        }
        Step::Poll { consumer } => {
            let offset = pre.consumers[usize::from(consumer)].fetch;
            let first = if m.variant.offset_before_effect() {
                format!("; commits offset {} first (before the effect)", offset + 1)
            } else {
                String::new()
            };
            format!(
                "consumer C{consumer}: polls offset {offset} (o{}){first}",
                event(pre, offset)
            )
        }
        Step::Begin { consumer, offset } => {
            let e = event(pre, offset);
            let ei = usize::from(e);
            let stage = post.consumers[usize::from(consumer)]
                .msgs()
                .find(|m| m.offset == offset)
                .map(|m| m.stage);
            let charge = match (pre.charges[ei], post.charges[ei]) {
                (0, _) => "charged",
                (a, b) if a == b => {
                    "the provider answers from its record (same key), no new charge"
                }
                _ => "CHARGED AGAIN (no provider key)",
            };
            let how = if m.variant.fast_path() && pre.redis[ei] {
                "Redis fast path knows it: a copy, skipped".to_string()
            } else if stage == Some(Stage::Done) {
                "the inbox has it: a copy, skipped".to_string()
            } else if m.variant.inbox() {
                format!("BEGIN; inbox row inserted (first delivery); provider {charge}")
            } else {
                format!("BEGIN (no inbox); provider {charge}")
            };
            format!("consumer C{consumer}: offset {offset} (o{e}): {how}")
        }
        Step::Commit { consumer, offset } => {
            let e = usize::from(event(pre, offset));
            if post.payments[e] == pre.payments[e] {
                format!(
                    "consumer C{consumer}: UNIQUE(order_id) refuses a second payment for o{e}; COMMIT"
                )
            } else if pre.payments[e] > 0 {
                format!("consumer C{consumer}: INSERT a SECOND payment for o{e}; COMMIT")
            } else {
                format!("consumer C{consumer}: INSERT payment for o{e}; COMMIT")
            }
        }
        Step::StoreOffset { consumer, offset } => {
            if pre.owner != consumer {
                format!(
                    "consumer C{consumer}: offset {offset} finished; the partition is no longer its own, nothing stored"
                )
            } else if post.committed_offset > pre.committed_offset {
                format!(
                    "consumer C{consumer}: offset {offset} finished; stored offset → {}",
                    post.committed_offset
                )
            } else {
                format!(
                    "consumer C{consumer}: offset {offset} finished; stored offset stays {} (C3: an earlier one is unfinished)",
                    post.committed_offset
                )
            }
        }
        Step::Crash { actor } => format!(
            "CRASH {} at {}; restarts with nothing in memory",
            actor_name(actor),
            crash_point(m, pre, actor)
        ),
        Step::DuplicateDelivery { offset } => format!(
            "FAULT the broker delivers offset {offset} (o{}) again → offset {}",
            event(pre, offset),
            pre.log_len
        ),
        Step::Rebalance => format!(
            "FAULT rebalance: the partition moves C{} → C{}, which resumes at the committed offset {}",
            pre.owner, post.owner, pre.committed_offset
        ),
        Step::RedisLoses { order } => format!("FAULT Redis loses o{order}'s entry"),
    };
    format!("{what:<100} [{}]", step.code())
}

/// The end state in one paragraph: orders, rows, partition, offset, effects.
pub fn summary(s: &State) -> String {
    let orders: Vec<String> = s
        .accepted()
        .map(|(o, r)| {
            let row = s
                .row(o)
                .map_or(String::new(), |row| format!(" row {}", row.state.name()));
            format!(
                "o{o} (request {}, key k{}, seq {}{row}): {} payment(s), {} charge(s)",
                r.intent,
                r.key,
                r.seq,
                s.payments[usize::from(o)],
                s.charges[usize::from(o)]
            )
        })
        .collect();
    let log: Vec<String> = s.log().iter().map(|e| format!("o{e}")).collect();
    format!(
        "orders: {}; partition: [{}]; committed offset {}",
        orders.join("; "),
        log.join(", "),
        s.committed_offset
    )
}
