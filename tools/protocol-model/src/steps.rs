//! The steps of the model, each named after the code that does it. Next to every step
//! is the function, by path (`file.rs::function`); `scripts/check-code-refs.sh` fails
//! when a named function is no longer in that file, so the model cannot drift from the
//! code without the docs check saying so.

use crate::state::Actor;

/// One step of one actor, or one fault. Names follow the code's crash points (A1, A2,
/// R1, R2, C1, C2) and row states (PENDING, SENDING, SENT, FAILED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    // --- the client and the API ---
    /// Begin the request's transaction: replay the stored answer of its
    /// Idempotency-Key, or insert the order (and its outbox row), taking a `seq`.
    ApiInsert { intent: u8 },
    /// Commit order, outbox row and key together.
    ApiCommit { intent: u8 },
    /// Answer `201`. Before it: crash point A1.
    ApiAnswer { intent: u8 },
    /// Direct mode: the `pending` line in the send log. Before it: crash point A2.
    DirectLog { intent: u8 },
    /// Direct mode: send, await the ack, log `acked`.
    DirectSend { intent: u8 },
    /// Direct mode: the re-push job sends an event whose last line is `pending`.
    Repush { order: u8 },

    // --- the relays ---
    /// Claim rows by state (PENDING, or SENDING with an expired lease) → SENDING,
    /// version + 1, lease.
    Claim { relay: u8 },
    /// Send the batch's next row; the broker appends it and acks.
    Send { relay: u8 },
    /// Mark acked rows SENT (guarded by the claim's version); release failed ones to
    /// PENDING, or FAILED after the last attempt if the failure was permanent. Before
    /// it: crash point R2 (R3 when streaming).
    Mark { relay: u8 },
    /// A SENDING row's lease runs out (`available_at` passes).
    LeaseRunsOut { order: u8 },
    /// An operator releases a FAILED row (`outbox::retry_failed`).
    OperatorRetry { order: u8 },

    // --- the consumers ---
    /// The partition's owner polls the next record.
    Poll { consumer: u8 },
    /// Redis fast path, then the inbox record opening the transaction; on a first
    /// delivery, the provider's charge, keyed by the order id (outside the transaction).
    Begin { consumer: u8, offset: u8 },
    /// Payment row (`UNIQUE(order_id)`) + commit, then remember in Redis. Before it:
    /// crash point C1.
    Commit { consumer: u8, offset: u8 },
    /// Finish the message and store the contiguous offset. Before it: crash point C2
    /// (C3 while an earlier offset is unfinished).
    StoreOffset { consumer: u8, offset: u8 },

    // --- faults ---
    /// The process dies where it is; it restarts with nothing in memory.
    Crash { actor: Actor },
    /// The broker appends the record, the relay's ack is lost: the send "failed".
    SendAckLost { relay: u8 },
    /// The broker refuses the send for good (no such topic, record too large).
    SendRefused { relay: u8 },
    /// The broker delivers a record again.
    DuplicateDelivery { offset: u8 },
    /// The group moves the partition to the other consumer.
    Rebalance,
    /// A Redis entry vanishes (eviction, restart).
    RedisLoses { order: u8 },
}

/// Where each step happens in the code. Every entry is `path.rs::function`, checked by
/// `scripts/check-code-refs.sh`. One step and one function a line: a table to read.
#[rustfmt::skip]
pub const CODE: &[(&str, &str)] = &[
    ("ApiInsert", "services/order-service/src/api/create_order.rs::create_order"),
    ("ApiInsert", "services/order-service/src/api/idempotency.rs::claim"),
    ("ApiInsert", "shared/outbox/src/message.rs::enqueue"),
    ("ApiCommit", "services/order-service/src/api/create_order.rs::create_order"),
    ("ApiCommit", "services/order-service/src/api/idempotency.rs::finish"),
    ("ApiAnswer", "services/order-service/src/api/create_order.rs::create_order"),
    ("DirectLog", "services/order-service/src/direct_publish/send_log.rs::append"),
    ("DirectSend", "services/order-service/src/direct_publish/mod.rs::publish"),
    ("Repush", "services/order-service/src/direct_publish/repush.rs::repush_once"),
    ("Claim", "shared/outbox/src/relay/claim.rs::claim"),
    ("Claim", "shared/outbox/src/relay/lanes.rs::lane_pass"),
    ("Claim", "shared/outbox/src/relay/stream.rs::claim_and_hand_over"),
    ("Send", "shared/outbox/src/relay/publish.rs::publish_all"),
    ("Send", "shared/outbox/src/relay/stream.rs::hand_over"),
    ("Mark", "shared/outbox/src/relay/mark.rs::mark_sent"),
    ("Mark", "shared/outbox/src/relay/mark.rs::release_for_retry"),
    ("Mark", "shared/outbox/src/relay/pass.rs::publish_and_mark"),
    ("Mark", "shared/outbox/src/relay/stream.rs::settle"),
    ("LeaseRunsOut", "shared/outbox/src/relay/claim.rs::claim"),
    ("OperatorRetry", "shared/outbox/src/failed.rs::retry_failed"),
    ("Poll", "shared/message-consumer/src/parallel.rs::poll_until_stopped"),
    ("Poll", "shared/message-consumer/src/offsets.rs::receive"),
    ("Poll", "shared/message-consumer/src/parallel.rs::commit_before_effect"),
    ("Begin", "services/payment-service/src/payments.rs::Payments::handle"),
    ("Begin", "shared/message-consumer/src/parallel.rs::handle_one"),
    ("Begin", "shared/inbox/src/fast_path.rs::seen_recently"),
    ("Begin", "shared/inbox/src/lib.rs::begin_first_delivery"),
    ("Begin", "services/payment-service/src/provider.rs::charge"),
    ("Commit", "services/payment-service/src/payments.rs::apply_once"),
    ("Commit", "shared/inbox/src/fast_path.rs::remember"),
    ("StoreOffset", "shared/message-consumer/src/offsets.rs::finish"),
    ("StoreOffset", "shared/message-consumer/src/parallel.rs::handle_one"),
    ("StoreOffset", "shared/message-consumer/src/consumer.rs::consume_once"),
    ("Rebalance", "shared/message-consumer/src/hand_over.rs::pre_rebalance"),
    ("Rebalance", "shared/message-consumer/src/offsets.rs::revoke"),
    ("Crash", "shared/lifecycle/src/crash.rs::reached"),
    ("SendAckLost", "shared/outbox/src/relay/publish.rs::publish_all"),
    ("SendAckLost", "shared/outbox/src/relay/mark.rs::release_for_retry"),
    ("SendRefused", "shared/outbox/src/relay/publish.rs::publish_all"),
    ("SendRefused", "shared/outbox/src/relay/mark.rs::release_for_retry"),
    ("DuplicateDelivery", "shared/message-consumer/src/consumer.rs::poll_one"),
    ("RedisLoses", "shared/inbox/src/fast_path.rs::seen_recently"),
];

impl Step {
    /// Spends the fault budget (a lease running out does only under a live relay).
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            Step::Crash { .. }
                | Step::SendAckLost { .. }
                | Step::SendRefused { .. }
                | Step::DuplicateDelivery { .. }
                | Step::Rebalance
                | Step::RedisLoses { .. }
        )
    }

    /// The step's kind, as in [`CODE`].
    pub fn kind(&self) -> &'static str {
        match self {
            Step::ApiInsert { .. } => "ApiInsert",
            Step::ApiCommit { .. } => "ApiCommit",
            Step::ApiAnswer { .. } => "ApiAnswer",
            Step::DirectLog { .. } => "DirectLog",
            Step::DirectSend { .. } => "DirectSend",
            Step::Repush { .. } => "Repush",
            Step::Claim { .. } => "Claim",
            Step::Send { .. } => "Send",
            Step::Mark { .. } => "Mark",
            Step::LeaseRunsOut { .. } => "LeaseRunsOut",
            Step::OperatorRetry { .. } => "OperatorRetry",
            Step::Poll { .. } => "Poll",
            Step::Begin { .. } => "Begin",
            Step::Commit { .. } => "Commit",
            Step::StoreOffset { .. } => "StoreOffset",
            Step::Crash { .. } => "Crash",
            Step::SendAckLost { .. } => "SendAckLost",
            Step::SendRefused { .. } => "SendRefused",
            Step::DuplicateDelivery { .. } => "DuplicateDelivery",
            Step::Rebalance => "Rebalance",
            Step::RedisLoses { .. } => "RedisLoses",
        }
    }

    /// The code that does this step (the first entry of [`CODE`] for its kind).
    pub fn code(&self) -> &'static str {
        let kind = self.kind();
        CODE.iter()
            .find(|(k, _)| *k == kind)
            .map_or("(fault: no code)", |(_, c)| c)
    }
}
