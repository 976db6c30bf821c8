//! The transitions: which steps each actor can take in a state, and what each does.
//!
//! Steps are split in two. **Progress** steps are what the system does by itself (a
//! request goes on, a relay claims, a lease runs out under a dead relay, a consumer
//! polls). **Faults** spend a budget (`Bounds`): a crash, a lost ack, a slow relay, a
//! duplicate delivery, a rebalance, a Redis entry lost. A state with no progress step
//! left is *at rest*: whatever was going to happen has happened, and that is where
//! "no accepted order lost" is judged (see `properties.rs`).

use stateright::{Model, Property};

use crate::config::{Bounds, Variant};
use crate::properties;
use crate::state::{
    Actor, CONSUMERS, Claimed, MAX_BATCH, MAX_INTENTS, MAX_LOG, MAX_ORDERS, Msg, OrderRow,
    OutboxRow, RELAYS, Relay, Request, RowState, SendLine, SendResult, Stage, State,
};
use crate::steps::Step;

/// The protocol under one variant and one set of bounds.
#[derive(Debug, Clone, Copy)]
pub struct ProtocolModel {
    pub variant: Variant,
    pub bounds: Bounds,
}

impl ProtocolModel {
    pub fn new(variant: Variant, bounds: Bounds) -> Self {
        ProtocolModel { variant, bounds }
    }

    fn intents(&self) -> u8 {
        self.bounds.orders.min(MAX_INTENTS as u8)
    }

    /// Steps the system takes by itself.
    pub fn progress(&self, s: &State, out: &mut Vec<Step>) {
        self.api_steps(s, out);
        self.relay_steps(s, out);
        self.consumer_steps(s, out);
    }

    /// At rest: no progress step left, only faults.
    pub fn at_rest(&self, s: &State) -> bool {
        let mut steps = Vec::new();
        self.progress(s, &mut steps);
        steps.is_empty()
    }

    // ------------------------------------------------------------------ the API

    fn api_steps(&self, s: &State, out: &mut Vec<Step>) {
        for intent in 0..self.intents() {
            match s.requests[usize::from(intent)] {
                Request::Idle | Request::Failed => {
                    // Two transactions writing events of one key serialise on that
                    // key's aggregate row (in order-service each order is its own key,
                    // so two of them never meet); different keys interleave freely.
                    let key = intent % self.bounds.keys;
                    let key_busy = s.requests.iter().any(|r| match r {
                        Request::InTx(o) => s.key_of(*o) == Some(key),
                        _ => false,
                    });
                    if !key_busy && free_order_slot(s).is_some() {
                        out.push(Step::ApiInsert { intent });
                    }
                }
                Request::InTx(_) => out.push(Step::ApiCommit { intent }),
                Request::Committed(_) if self.variant.outbox() => {
                    out.push(Step::ApiAnswer { intent });
                }
                Request::Committed(_) => out.push(Step::DirectLog { intent }),
                Request::Logged(_) => {
                    if log_has_room(s) {
                        out.push(Step::DirectSend { intent });
                    }
                }
                Request::Acked(_) => out.push(Step::ApiAnswer { intent }),
                Request::Answered => {}
            }
        }
        // The re-push job leaves a line alone while its request is still sending it
        // (the in-flight grace of `unsettled`).
        for order in 0..MAX_ORDERS as u8 {
            if s.send_log[usize::from(order)] == SendLine::Pending
                && !s.requests.contains(&Request::Logged(order))
                && log_has_room(s)
            {
                out.push(Step::Repush { order });
            }
        }
    }

    fn api_insert(&self, s: &mut State, intent: u8) {
        let i = usize::from(intent);
        if self.variant.idempotency_key() {
            // `idempotency::claim`: the key's answer committed with its order.
            if s.orders
                .iter()
                .flatten()
                .any(|o| o.intent == intent && o.committed)
            {
                s.requests[i] = Request::Answered;
                return;
            }
        }
        let Some(slot) = free_order_slot(s) else {
            return;
        };
        s.next_seq += 1;
        s.orders[usize::from(slot)] = Some(OrderRow {
            intent,
            key: intent % self.bounds.keys,
            seq: s.next_seq,
            committed: false,
        });
        s.requests[i] = Request::InTx(slot);
    }

    fn api_commit(&self, s: &mut State, intent: u8) {
        let i = usize::from(intent);
        let Request::InTx(o) = s.requests[i] else {
            return;
        };
        if let Some(order) = s.orders[usize::from(o)].as_mut() {
            order.committed = true;
        }
        if self.variant.outbox() {
            // The outbox row commits with the order: visible from now on, as PENDING.
            s.outbox[usize::from(o)] = Some(OutboxRow {
                state: RowState::Pending,
                version: 0,
                attempts: 0,
                lease_expired: false,
            });
        }
        s.requests[i] = Request::Committed(o);
    }

    // ------------------------------------------------------------------ the relays

    /// Rows a claim may take, in `seq` order (`claim.rs::claim`).
    fn claimable(&self, s: &State) -> Vec<u8> {
        let mut rows: Vec<u8> = (0..MAX_ORDERS as u8)
            .filter(|&o| {
                let (Some(order), Some(row)) = (s.order(o), s.row(o)) else {
                    return false;
                };
                let by_state = match row.state {
                    RowState::Pending => {
                        // The cursor finds new rows only past the highest seq it
                        // claimed; retries and expired leases it finds by state.
                        !self.variant.claim_by_cursor() || row.attempts > 0 || order.seq > s.cursor
                    }
                    RowState::Sending => row.lease_expired,
                    RowState::Sent | RowState::Failed => false,
                };
                // No earlier row of this key still unsent (FAILED counts as unsent).
                let key_free = !self.variant.key_check()
                    || !s.accepted().any(|(e, other)| {
                        e != o
                            && other.key == order.key
                            && other.seq < order.seq
                            && s.row(e).is_some_and(|r| r.state != RowState::Sent)
                    });
                order.committed && by_state && key_free
            })
            .collect();
        rows.sort_by_key(|&o| s.seq_of(o));
        rows.truncate(usize::from(self.bounds.batch).min(MAX_BATCH));
        rows
    }

    fn relay_steps(&self, s: &State, out: &mut Vec<Step>) {
        for relay in 0..RELAYS as u8 {
            let r = &s.relays[usize::from(relay)];
            if r.is_idle() {
                if !self.claimable(s).is_empty() {
                    out.push(Step::Claim { relay });
                }
            } else if self.variant.mark_before_send() && !r.marked {
                out.push(Step::Mark { relay });
            } else if r.claimed().any(|c| c.result == SendResult::Unsent) {
                if log_has_room(s) {
                    out.push(Step::Send { relay });
                }
            } else {
                out.push(Step::Mark { relay });
            }
        }
        for order in 0..MAX_ORDERS as u8 {
            if let Some(row) = s.row(order) {
                // A dead relay's lease runs out by itself: time passing, no fault.
                if row.state == RowState::Sending && !row.lease_expired && !held(s, order) {
                    out.push(Step::LeaseRunsOut { order });
                }
                if row.state == RowState::Failed {
                    out.push(Step::OperatorRetry { order });
                }
            }
        }
    }

    fn claim(&self, s: &mut State, relay: u8) {
        let rows = self.claimable(s);
        let mut batch = [None; MAX_BATCH];
        for (slot, o) in batch.iter_mut().zip(rows) {
            let seq = s.seq_of(o);
            if let Some(row) = s.outbox[usize::from(o)].as_mut() {
                row.state = RowState::Sending;
                row.version += 1;
                row.attempts += 1;
                row.lease_expired = false;
                *slot = Some(Claimed {
                    order: o,
                    version: row.version,
                    result: SendResult::Unsent,
                });
            }
            s.cursor = s.cursor.max(seq);
        }
        s.relays[usize::from(relay)] = Relay {
            batch,
            marked: false,
        };
    }

    /// The batch's next row goes to the broker. `Acked` and `Failed` (the ack lost) are
    /// appended; `Refused` is not.
    fn send(&self, s: &mut State, relay: u8, result: SendResult) {
        let r = usize::from(relay);
        let Some(c) = s.relays[r]
            .batch
            .iter_mut()
            .flatten()
            .find(|c| c.result == SendResult::Unsent)
        else {
            return;
        };
        c.result = result;
        let order = c.order;
        if result != SendResult::Refused {
            append(s, order);
        }
        if s.relays[r].marked
            && s.relays[r]
                .claimed()
                .all(|c| c.result != SendResult::Unsent)
        {
            // Mark before send: nothing is left to do once everything went out.
            s.relays[r] = Relay::default();
        }
    }

    fn version_ok(&self, row: &OutboxRow, c: &Claimed) -> bool {
        !self.variant.version_check() || row.version == c.version
    }

    fn mark(&self, s: &mut State, relay: u8) {
        let r = usize::from(relay);
        let relay_state = s.relays[r];
        if self.variant.mark_before_send() && !relay_state.marked {
            for c in relay_state.claimed() {
                if let Some(row) = s.outbox[usize::from(c.order)].as_mut()
                    && self.version_ok(row, c)
                {
                    row.state = RowState::Sent;
                }
            }
            s.relays[r].marked = true;
            return;
        }
        for c in relay_state.claimed() {
            let Some(row) = s.outbox[usize::from(c.order)].as_mut() else {
                continue;
            };
            if !self.version_ok(row, c) {
                // Lease lost: another relay owns the row; this mark matches nothing.
                continue;
            }
            match c.result {
                SendResult::Acked => row.state = RowState::Sent,
                // Only a permanent failure is given up, once the row used its attempts;
                // a transient one is retried without limit.
                SendResult::Refused if row.attempts >= self.bounds.max_attempts => {
                    row.state = RowState::Failed;
                }
                SendResult::Failed | SendResult::Refused => {
                    row.state = RowState::Pending;
                    row.lease_expired = false;
                }
                SendResult::Unsent => {}
            }
        }
        s.relays[r] = Relay::default();
    }

    // ------------------------------------------------------------------ the consumers

    fn consumer_steps(&self, s: &State, out: &mut Vec<Step>) {
        for consumer in 0..CONSUMERS as u8 {
            let c = &s.consumers[usize::from(consumer)];
            if s.owner == consumer
                && c.fetch < s.log_len
                && c.msgs().count() < usize::from(self.bounds.in_flight)
            {
                out.push(Step::Poll { consumer });
            }
            for m in c.msgs() {
                let offset = m.offset;
                match m.stage {
                    Stage::Received => {
                        if self.may_begin(s, consumer, m) {
                            out.push(Step::Begin { consumer, offset });
                        }
                    }
                    Stage::Charged => out.push(Step::Commit { consumer, offset }),
                    Stage::Done => out.push(Step::StoreOffset { consumer, offset }),
                }
            }
        }
    }

    /// A message starts when no earlier message of its key is unfinished in this
    /// consumer (`parallel.rs::run_key`), and not while another transaction holds its
    /// event id's inbox key (the INSERT waits for that transaction).
    fn may_begin(&self, s: &State, consumer: u8, m: &Msg) -> bool {
        let c = &s.consumers[usize::from(consumer)];
        let event = s.log[usize::from(m.offset)];
        let key = s.key_of(event);
        let behind = c
            .msgs()
            .any(|e| e.offset < m.offset && s.key_of(s.log[usize::from(e.offset)]) == key);
        if behind {
            return false;
        }
        if self.variant.fast_path() && s.redis[usize::from(event)] {
            return true;
        }
        if !self.variant.inbox() || s.inbox[usize::from(event)] {
            return true;
        }
        let locked = s.consumers.iter().any(|other| {
            other
                .msgs()
                .any(|e| e.stage == Stage::Charged && s.log[usize::from(e.offset)] == event)
        });
        !locked
    }

    fn msg_mut(s: &mut State, consumer: u8, offset: u8) -> Option<&mut Msg> {
        s.consumers[usize::from(consumer)]
            .msgs
            .iter_mut()
            .flatten()
            .find(|m| m.offset == offset)
    }

    fn poll(&self, s: &mut State, consumer: u8) {
        let c = &mut s.consumers[usize::from(consumer)];
        let offset = c.fetch;
        if let Some(slot) = c.msgs.iter_mut().find(|m| m.is_none()) {
            *slot = Some(Msg {
                offset,
                stage: Stage::Received,
            });
            c.fetch += 1;
        }
        if self.variant.offset_before_effect() {
            // The unsafe toggle: the group believes the message done on arrival.
            s.committed_offset = s.committed_offset.max(offset + 1);
        }
    }

    fn begin(&self, s: &mut State, consumer: u8, offset: u8) {
        let event = usize::from(s.log[usize::from(offset)]);
        let fast_hit = self.variant.fast_path() && s.redis[event];
        let inbox_hit = self.variant.inbox() && s.inbox[event];
        if inbox_hit && self.variant.fast_path() {
            // `handle` remembers the id after `apply_once`, copy or not.
            s.redis[event] = true;
        }
        if let Some(m) = Self::msg_mut(s, consumer, offset) {
            m.stage = if fast_hit || inbox_hit {
                Stage::Done
            } else {
                Stage::Charged
            };
        }
        if fast_hit || inbox_hit {
            return;
        }
        // The charge, outside the transaction. The provider answers a repeated key from
        // its record: one charge per order.
        s.charges[event] = if self.variant.provider_key() {
            s.charges[event].max(1)
        } else {
            s.charges[event].saturating_add(1).min(3)
        };
    }

    fn commit(&self, s: &mut State, consumer: u8, offset: u8) {
        let event = s.log[usize::from(offset)];
        let e = usize::from(event);
        if !(self.variant.business_key() && s.payments[e] > 0) {
            s.payments[e] = s.payments[e].saturating_add(1).min(3);
            // Per-key order of effects: no later event of this key applied before.
            let (key, seq) = (s.key_of(event), s.seq_of(event));
            if s.accepted().any(|(o, r)| {
                o != event && Some(r.key) == key && r.seq > seq && s.payments[usize::from(o)] > 0
            }) {
                s.effects_out_of_order = true;
            }
        }
        if self.variant.inbox() {
            s.inbox[e] = true;
        }
        if self.variant.fast_path() {
            s.redis[e] = true;
        }
        if let Some(m) = Self::msg_mut(s, consumer, offset) {
            m.stage = Stage::Done;
        }
    }

    fn store_offset(&self, s: &mut State, consumer: u8, offset: u8) {
        let c = &mut s.consumers[usize::from(consumer)];
        let mut left: Vec<Msg> = c.msgs().copied().filter(|m| m.offset != offset).collect();
        left.sort_by_key(|m| m.offset);
        c.msgs = [None; crate::state::MAX_IN_FLIGHT];
        for (slot, m) in c.msgs.iter_mut().zip(left) {
            *slot = Some(m);
        }
        // The contiguous position: the first unfinished offset, or the next to fetch.
        // A member that lost the partition stores nothing for it.
        if s.owner == consumer {
            let position = c.msgs().map(|m| m.offset).min().unwrap_or(c.fetch);
            s.committed_offset = s.committed_offset.max(position);
        }
    }

    // ------------------------------------------------------------------ faults

    fn faults(&self, s: &State, out: &mut Vec<Step>) {
        let f = &s.faults;
        let b = &self.bounds;
        if f.total >= b.faults {
            return;
        }
        if f.crashes < b.crashes {
            let mut actors = Vec::new();
            if s.requests.iter().any(|r| {
                matches!(
                    r,
                    Request::InTx(_)
                        | Request::Committed(_)
                        | Request::Logged(_)
                        | Request::Acked(_)
                )
            }) {
                actors.push(Actor::Api);
            }
            for r in 0..RELAYS as u8 {
                if !s.relays[usize::from(r)].is_idle() {
                    actors.push(Actor::Relay(r));
                }
            }
            for c in 0..CONSUMERS as u8 {
                if s.consumers[usize::from(c)].msgs().next().is_some() {
                    actors.push(Actor::Consumer(c));
                }
            }
            // A crash of an idle process changes nothing: only busy ones are offered.
            for actor in actors {
                if f.crashed & actor.bit() == 0 {
                    out.push(Step::Crash { actor });
                }
            }
        }
        if f.lost_acks < b.lost_acks {
            for relay in 0..RELAYS as u8 {
                let r = &s.relays[usize::from(relay)];
                if !r.is_idle()
                    && (r.marked || !self.variant.mark_before_send())
                    && r.claimed().any(|c| c.result == SendResult::Unsent)
                    && log_has_room(s)
                {
                    out.push(Step::SendAckLost { relay });
                }
            }
        }
        if f.refused_sends < b.refused_sends {
            for relay in 0..RELAYS as u8 {
                let r = &s.relays[usize::from(relay)];
                if !r.is_idle()
                    && (r.marked || !self.variant.mark_before_send())
                    && r.claimed().any(|c| c.result == SendResult::Unsent)
                {
                    out.push(Step::SendRefused { relay });
                }
            }
        }
        if f.slow_relays < b.slow_relays {
            for order in 0..MAX_ORDERS as u8 {
                if let Some(row) = s.row(order)
                    && row.state == RowState::Sending
                    && !row.lease_expired
                    && held(s, order)
                {
                    out.push(Step::LeaseRunsOut { order });
                }
            }
        }
        if f.duplicates < b.duplicates && log_has_room(s) {
            for offset in 0..s.log_len {
                out.push(Step::DuplicateDelivery { offset });
            }
        }
        if f.rebalances < b.rebalances {
            out.push(Step::Rebalance);
        }
        if f.redis_losses < b.redis_losses {
            for order in 0..MAX_ORDERS as u8 {
                if s.redis[usize::from(order)] {
                    out.push(Step::RedisLoses { order });
                }
            }
        }
    }

    fn crash(&self, s: &mut State, actor: Actor) {
        s.faults.crashes += 1;
        s.faults.crashed |= actor.bit();
        match actor {
            Actor::Api => {
                for i in 0..MAX_INTENTS {
                    match s.requests[i] {
                        Request::InTx(o) => {
                            // Rolled back; its seq stays used (a gap, as with a sequence).
                            s.orders[usize::from(o)] = None;
                            s.requests[i] = Request::Failed;
                        }
                        Request::Committed(_) | Request::Logged(_) | Request::Acked(_) => {
                            s.requests[i] = Request::Failed;
                        }
                        Request::Idle | Request::Answered | Request::Failed => {}
                    }
                }
            }
            Actor::Relay(r) => s.relays[usize::from(r)] = Relay::default(),
            Actor::Consumer(c) => {
                // Open transactions roll back; a restarted owner resumes at the
                // committed offset.
                let consumer = &mut s.consumers[usize::from(c)];
                consumer.msgs = Default::default();
                if s.owner == c {
                    consumer.fetch = s.committed_offset;
                }
            }
        }
    }

    fn rebalance(&self, s: &mut State) {
        s.faults.rebalances += 1;
        let old = usize::from(s.owner);
        // The revoke: what has not started never starts here; what runs goes on (a
        // handler slower than REVOKE_WAIT), but its offset is no longer ours to store.
        for slot in s.consumers[old].msgs.iter_mut() {
            if slot.is_some_and(|m| m.stage == Stage::Received) {
                *slot = None;
            }
        }
        let mut left: Vec<Msg> = s.consumers[old].msgs().copied().collect();
        left.sort_by_key(|m| m.offset);
        s.consumers[old].msgs = Default::default();
        for (slot, m) in s.consumers[old].msgs.iter_mut().zip(left) {
            *slot = Some(m);
        }
        s.owner = 1 - s.owner;
        let new = usize::from(s.owner);
        s.consumers[new].fetch = s.committed_offset;
    }
}

fn free_order_slot(s: &State) -> Option<u8> {
    (0..MAX_ORDERS as u8).find(|&o| s.orders[usize::from(o)].is_none())
}

fn log_has_room(s: &State) -> bool {
    usize::from(s.log_len) < MAX_LOG
}

/// Does a relay hold the row under its current version (a live claim)?
fn held(s: &State, order: u8) -> bool {
    let Some(row) = s.row(order) else {
        return false;
    };
    s.relays.iter().any(|r| {
        r.claimed()
            .any(|c| c.order == order && c.version == row.version)
    })
}

/// The broker appends a record; the per-key order of first copies is watched here.
fn append(s: &mut State, event: u8) {
    let seen = s.log().contains(&event);
    if !seen {
        let (key, seq) = (s.key_of(event), s.seq_of(event));
        if s.log()
            .iter()
            .any(|&e| e != event && s.key_of(e) == key && s.seq_of(e) > seq)
        {
            s.publication_out_of_order = true;
        }
    }
    if usize::from(s.log_len) < MAX_LOG {
        s.log[usize::from(s.log_len)] = event;
        s.log_len += 1;
    }
}

impl Model for ProtocolModel {
    type State = State;
    type Action = Step;

    fn init_states(&self) -> Vec<State> {
        vec![State::default()]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Step>) {
        self.progress(s, actions);
        self.faults(s, actions);
    }

    fn next_state(&self, last: &State, step: Step) -> Option<State> {
        let mut s = *last;
        let fault = match step {
            Step::LeaseRunsOut { order } => held(&s, order),
            _ => step.is_fault(),
        };
        if fault {
            s.faults.total += 1;
        }
        match step {
            Step::ApiInsert { intent } => self.api_insert(&mut s, intent),
            Step::ApiCommit { intent } => self.api_commit(&mut s, intent),
            Step::ApiAnswer { intent } => s.requests[usize::from(intent)] = Request::Answered,
            Step::DirectLog { intent } => {
                if let Request::Committed(o) = s.requests[usize::from(intent)] {
                    s.send_log[usize::from(o)] = SendLine::Pending;
                    s.requests[usize::from(intent)] = Request::Logged(o);
                }
            }
            Step::DirectSend { intent } => {
                if let Request::Logged(o) = s.requests[usize::from(intent)] {
                    append(&mut s, o);
                    s.send_log[usize::from(o)] = SendLine::Acked;
                    s.requests[usize::from(intent)] = Request::Acked(o);
                }
            }
            Step::Repush { order } => {
                append(&mut s, order);
                s.send_log[usize::from(order)] = SendLine::Acked;
            }
            Step::Claim { relay } => self.claim(&mut s, relay),
            Step::Send { relay } => self.send(&mut s, relay, SendResult::Acked),
            Step::SendAckLost { relay } => {
                s.faults.lost_acks += 1;
                self.send(&mut s, relay, SendResult::Failed);
            }
            Step::SendRefused { relay } => {
                s.faults.refused_sends += 1;
                self.send(&mut s, relay, SendResult::Refused);
            }
            Step::Mark { relay } => self.mark(&mut s, relay),
            Step::LeaseRunsOut { order } => {
                if held(&s, order) {
                    s.faults.slow_relays += 1;
                }
                if let Some(row) = s.outbox[usize::from(order)].as_mut() {
                    row.lease_expired = true;
                }
            }
            Step::OperatorRetry { order } => {
                if let Some(row) = s.outbox[usize::from(order)].as_mut() {
                    row.state = RowState::Pending;
                    row.attempts = 0;
                }
            }
            Step::Poll { consumer } => self.poll(&mut s, consumer),
            Step::Begin { consumer, offset } => self.begin(&mut s, consumer, offset),
            Step::Commit { consumer, offset } => self.commit(&mut s, consumer, offset),
            Step::StoreOffset { consumer, offset } => self.store_offset(&mut s, consumer, offset),
            Step::Crash { actor } => self.crash(&mut s, actor),
            Step::DuplicateDelivery { offset } => {
                s.faults.duplicates += 1;
                let event = s.log[usize::from(offset)];
                append(&mut s, event);
            }
            Step::Rebalance => self.rebalance(&mut s),
            Step::RedisLoses { order } => {
                s.faults.redis_losses += 1;
                s.redis[usize::from(order)] = false;
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        use properties::{
            LOG_FULL, NO_DOUBLE_EFFECT, NO_LOSS, OFFSET_SAFE, PER_KEY_ORDER,
            no_accepted_order_lost, no_effect_applied_twice, per_key_order_kept,
            stored_offset_never_passes_unapplied,
        };
        vec![
            Property::always(NO_LOSS, |m: &Self, s: &State| {
                no_accepted_order_lost(s, m.at_rest(s))
            }),
            Property::always(NO_DOUBLE_EFFECT, |_, s: &State| no_effect_applied_twice(s)),
            Property::always(PER_KEY_ORDER, |_, s: &State| per_key_order_kept(s)),
            Property::always(OFFSET_SAFE, |_, s: &State| {
                stored_offset_never_passes_unapplied(s)
            }),
            Property::sometimes(LOG_FULL, |_, s: &State| {
                usize::from(s.log_len) == crate::state::MAX_LOG
            }),
        ]
    }
}
