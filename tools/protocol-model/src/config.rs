//! What one run checks: a variant of the protocol (the safe one, or one unsafe setting of
//! the code or hazard of the docs) within bounds that keep the exploration finite.

/// One setting of the protocol. `Safe` is the code as it runs by default; every other
/// value switches exactly one defence off, as a teaching toggle or a hazard the docs
/// describe (docs/en/12-model-check.md lists what each one breaks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The defaults: outbox, claim by state with lease and version, mark after the ack,
    /// Idempotency-Key, offset after the effect, every dedup layer on.
    Safe,
    /// `CONSUMER_OFFSET_COMMIT=before-effect`: the offset is committed when the message
    /// arrives (`shared/message-consumer/src/parallel.rs::commit_before_effect`).
    OffsetBeforeEffect,
    /// Every dedup layer off: inbox, Redis fast path, `UNIQUE(order_id)`, the provider's
    /// idempotency key.
    DedupOff,
    /// `DEDUP_INBOX=false` and `DEDUP_FAST_PATH=false`, the toggles the code has: the
    /// business key and the provider key still stand.
    InboxAndFastPathOff,
    /// `PUBLISH_MODE=direct`: no outbox row; the event is logged and sent after the
    /// order's commit (crash point A2 in between).
    DirectCrashA2,
    /// A client that retries without an `Idempotency-Key` after crash point A1.
    RetryWithoutKey,
    /// The relay finds new rows with a cursor (`seq > highest seq claimed`) instead of by
    /// state.
    ClaimByCursor,
    /// The relay marks rows `SENT` right after the claim, before it sends them.
    MarkBeforeSend,
    /// Claims still set a lease, but mark-sent and the release after a failed send write
    /// by id alone, without the claim's version.
    LeaseWithoutVersion,
    /// The claim without its per-key clause ("no earlier unsent row of this key").
    NoKeyCheck,
}

/// What a variant is expected to do under the checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// No counterexample within the bounds.
    Holds,
    /// A counterexample of this property (one of [`crate::properties::NAMES`]).
    Breaks(&'static str),
    /// Unsafe in name, harmless in the model, for the reason given.
    Harmless(&'static str),
}

impl Variant {
    pub const ALL: [Variant; 10] = [
        Variant::Safe,
        Variant::OffsetBeforeEffect,
        Variant::DedupOff,
        Variant::InboxAndFastPathOff,
        Variant::DirectCrashA2,
        Variant::RetryWithoutKey,
        Variant::ClaimByCursor,
        Variant::MarkBeforeSend,
        Variant::LeaseWithoutVersion,
        Variant::NoKeyCheck,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Safe => "safe",
            Variant::OffsetBeforeEffect => "offset-before-effect",
            Variant::DedupOff => "dedup-off",
            Variant::InboxAndFastPathOff => "inbox-and-fast-path-off",
            Variant::DirectCrashA2 => "direct-a2",
            Variant::RetryWithoutKey => "retry-without-key",
            Variant::ClaimByCursor => "claim-by-cursor",
            Variant::MarkBeforeSend => "mark-before-send",
            Variant::LeaseWithoutVersion => "lease-without-version",
            Variant::NoKeyCheck => "no-key-check",
        }
    }

    /// The setting of the code (or the hazard of the docs) the variant stands for.
    pub fn setting(self) -> &'static str {
        match self {
            Variant::Safe => "the defaults",
            Variant::OffsetBeforeEffect => "CONSUMER_OFFSET_COMMIT=before-effect",
            Variant::DedupOff => {
                "inbox, Redis fast path, UNIQUE(order_id) and provider key all off"
            }
            Variant::InboxAndFastPathOff => "DEDUP_INBOX=false DEDUP_FAST_PATH=false",
            Variant::DirectCrashA2 => "PUBLISH_MODE=direct, a crash at A2",
            Variant::RetryWithoutKey => "client retries without Idempotency-Key (A1)",
            Variant::ClaimByCursor => "hazard: claim by cursor (seq > highest seq claimed)",
            Variant::MarkBeforeSend => "hazard: mark SENT before the send",
            Variant::LeaseWithoutVersion => "hazard: lease without a version check",
            Variant::NoKeyCheck => "hazard: claim without the per-key clause",
        }
    }

    pub fn expected(self) -> Expected {
        use crate::properties::{NO_DOUBLE_EFFECT, NO_LOSS, PER_KEY_ORDER};
        match self {
            Variant::Safe => Expected::Holds,
            Variant::OffsetBeforeEffect
            | Variant::DirectCrashA2
            | Variant::ClaimByCursor
            | Variant::MarkBeforeSend => Expected::Breaks(NO_LOSS),
            Variant::DedupOff | Variant::RetryWithoutKey => Expected::Breaks(NO_DOUBLE_EFFECT),
            Variant::NoKeyCheck => Expected::Breaks(PER_KEY_ORDER),
            Variant::InboxAndFastPathOff => Expected::Harmless(
                "a copy that passes the missing inbox reaches the provider with the same \
                 key (same answer, no second charge) and the payment insert, where \
                 UNIQUE(order_id) stops it: one layer off is absorbed by the others",
            ),
            Variant::LeaseWithoutVersion => Expected::Harmless(
                "a relay that lost its lease writes only what its own send proved: SENT \
                 after its own ack (the record is in the log), PENDING or FAILED after its \
                 own failed send (the row is sent again); the worst is one more copy, \
                 which the inbox absorbs",
            ),
        }
    }

    /// Does the order's transaction write an outbox row (`PUBLISH_MODE=outbox`)?
    pub fn outbox(self) -> bool {
        self != Variant::DirectCrashA2
    }
    pub fn idempotency_key(self) -> bool {
        self != Variant::RetryWithoutKey
    }
    pub fn inbox(self) -> bool {
        !matches!(self, Variant::DedupOff | Variant::InboxAndFastPathOff)
    }
    pub fn fast_path(self) -> bool {
        self.inbox()
    }
    pub fn business_key(self) -> bool {
        self != Variant::DedupOff
    }
    pub fn provider_key(self) -> bool {
        self != Variant::DedupOff
    }
    pub fn offset_before_effect(self) -> bool {
        self == Variant::OffsetBeforeEffect
    }
    pub fn claim_by_cursor(self) -> bool {
        self == Variant::ClaimByCursor
    }
    pub fn mark_before_send(self) -> bool {
        self == Variant::MarkBeforeSend
    }
    pub fn version_check(self) -> bool {
        self != Variant::LeaseWithoutVersion
    }
    pub fn key_check(self) -> bool {
        self != Variant::NoKeyCheck
    }

    /// The key counts a variant is checked with. A variant expected to hold (or found
    /// harmless) is checked both ways; the cursor's loss needs two keys (a row of one key
    /// is claimed while the other key's row is not committed yet); the missing key clause
    /// needs two events of one key.
    pub fn keys(self) -> &'static [u8] {
        match self.expected() {
            Expected::Holds | Expected::Harmless(_) => &[2, 1],
            Expected::Breaks(_) if self == Variant::NoKeyCheck => &[1],
            Expected::Breaks(_) => &[2],
        }
    }

    /// The variant named on a command line.
    pub fn parse(name: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// How far the checker looks. Every fault is budgeted, so every run ends; the budgets
/// are reported with the result because "no counterexample" means "none within these".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// Client orders (1 or 2). A retry without a key may add a third or fourth order row.
    pub orders: u8,
    /// Message keys (1 or 2). Order `i` has key `i % keys`.
    pub keys: u8,
    /// Rows per claim (`RELAY_BATCH_SIZE`, 1 or 2).
    pub batch: u8,
    /// Faults in all, of every kind below: the budget that keeps the space finite.
    pub faults: u8,
    /// Crashes in all; at most one per actor (the API, each relay, each consumer).
    pub crashes: u8,
    /// Sends whose record the broker appended but whose ack the relay lost.
    pub lost_acks: u8,
    /// Sends the broker refuses for good (no such topic, record too large): a permanent
    /// failure, the only kind a row is given up for.
    pub refused_sends: u8,
    /// Leases that run out while their relay still holds the row (a relay slower than
    /// `RELAY_LEASE_MS`). A crashed relay's lease always runs out: that is no fault.
    pub slow_relays: u8,
    /// Copies of a record the broker delivers again.
    pub duplicates: u8,
    /// Partition moves between the two consumers of the group.
    pub rebalances: u8,
    /// Redis entries that vanish before their TTL (eviction, restart).
    pub redis_losses: u8,
    /// Messages a consumer holds at once (received, not finished); 1 or 2.
    pub in_flight: u8,
    /// `RELAY_MAX_ATTEMPTS`: claims of a row before a permanent failure makes it `FAILED`.
    pub max_attempts: u8,
    /// Stop after this many states (a safety net; a run that reaches it says so).
    pub state_cap: usize,
}

impl Bounds {
    /// The bounds `cargo test` (and so `make test`) checks, with `keys` keys: with two
    /// keys (relays and consumers work on both at once) one fault in all; with one key
    /// (the key's order is at stake) two.
    pub const fn test(keys: u8) -> Self {
        Bounds {
            orders: 2,
            keys,
            batch: 2,
            faults: if keys == 1 { 2 } else { 1 },
            crashes: 2,
            lost_acks: 1,
            refused_sends: 1,
            slow_relays: 1,
            duplicates: 1,
            rebalances: 1,
            redis_losses: 1,
            in_flight: 2,
            max_attempts: 2,
            state_cap: 20_000_000,
        }
    }

    /// The deeper bounds of `make model-check`: one fault more. (Two keys with three
    /// faults outgrow this machine's memory: more than 10 GB within five minutes.)
    pub const fn deep(keys: u8) -> Self {
        let test = Bounds::test(keys);
        Bounds {
            faults: test.faults + 1,
            crashes: test.faults + 1,
            state_cap: 1_000_000_000,
            ..test
        }
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        format!(
            "{} orders, {} key(s), batch {}, {} fault(s) in all: ≤{} crash(es) (≤1 per actor), \
             ≤{} lost ack(s), ≤{} refused send(s), ≤{} slow relay(s), ≤{} duplicate delivery, ≤{} rebalance(s), \
             ≤{} Redis loss(es); {} message(s) in flight per consumer, RELAY_MAX_ATTEMPTS={}, \
             cap {} generated states",
            self.orders,
            self.keys,
            self.batch,
            self.faults,
            self.crashes,
            self.lost_acks,
            self.refused_sends,
            self.slow_relays,
            self.duplicates,
            self.rebalances,
            self.redis_losses,
            self.in_flight,
            self.max_attempts,
            self.state_cap
        )
    }
}
