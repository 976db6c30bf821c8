//! One state of the whole chain: client and API, database, two relays, the broker's
//! partition, two consumers of one group, Redis. Small fixed arrays of small numbers,
//! so that the checker hashes and copies states cheaply.

/// Client orders at most (`Bounds::orders`).
pub const MAX_INTENTS: usize = 2;
/// Order rows at most: a crash at A1 with both requests in that window, retried without
/// a key, makes two more.
pub const MAX_ORDERS: usize = 4;
pub const RELAYS: usize = 2;
pub const CONSUMERS: usize = 2;
/// Records the partition may hold; a state that fills it is a boundary (reported).
pub const MAX_LOG: usize = 12;
pub const MAX_BATCH: usize = 2;
pub const MAX_IN_FLIGHT: usize = 2;

/// Where one client order's HTTP request is (`create_order.rs::create_order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Request {
    /// Not sent yet.
    #[default]
    Idle,
    /// Transaction open: order row (and outbox row) inserted, not committed.
    InTx(u8),
    /// Committed, not answered. Outbox mode: crash point A1. Direct mode: A2 (the
    /// event is in no send log yet).
    Committed(u8),
    /// Direct mode: the send log has the `pending` line; the send follows.
    Logged(u8),
    /// Direct mode: sent and acked, not answered: crash point A1.
    Acked(u8),
    /// The client has its `201`.
    Answered,
    /// The API crashed under the request: the client sees an error and retries.
    Failed,
}

/// A row of `orders`. The order id is its index; its `OrderCreated` event has the same
/// index as event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderRow {
    /// The client order it was made for (a retry without a key makes a second row).
    pub intent: u8,
    pub key: u8,
    /// Taken at INSERT, visible at COMMIT: the outbox's `seq`.
    pub seq: u8,
    pub committed: bool,
}

/// The outbox row's `state` (`shared/outbox/migrations/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowState {
    Pending,
    Sending,
    Sent,
    Failed,
}

impl RowState {
    pub fn name(self) -> &'static str {
        match self {
            RowState::Pending => "PENDING",
            RowState::Sending => "SENDING",
            RowState::Sent => "SENT",
            RowState::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutboxRow {
    pub state: RowState,
    /// Bumped by every claim; every later write of the claimer requires it.
    pub version: u8,
    /// Claims so far (`attempts`); at `RELAY_MAX_ATTEMPTS` a failed send gives up.
    pub attempts: u8,
    /// `available_at` has passed for a `SENDING` row: its lease ran out.
    pub lease_expired: bool,
}

/// The last line of an event in direct mode's send log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SendLine {
    #[default]
    None,
    Pending,
    Acked,
}

/// What became of one claimed row's send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendResult {
    Unsent,
    Acked,
    /// A transient failure as far as the relay knows (here: the ack was lost, the record
    /// is on the partition all the same): retried without limit, never `FAILED`.
    Failed,
    /// A permanent failure (no such topic, record too large): nothing appended; given
    /// up (`FAILED`) once the row used its attempts.
    Refused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claimed {
    pub order: u8,
    /// The version this claim set.
    pub version: u8,
    pub result: SendResult,
}

/// A relay's memory: the batch it claimed (empty: idle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Relay {
    pub batch: [Option<Claimed>; MAX_BATCH],
    /// Mark-before-send variant: the batch is already marked `SENT`.
    pub marked: bool,
}

impl Relay {
    pub fn is_idle(&self) -> bool {
        self.batch.iter().all(Option::is_none)
    }
    pub fn claimed(&self) -> impl Iterator<Item = &Claimed> {
        self.batch.iter().flatten()
    }
}

/// How far a consumer got with one message (`payments.rs::Payments::handle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Polled, waiting for its key or a handler.
    Received,
    /// Transaction open with the inbox row inserted (it holds that event id's key), the
    /// provider called: crash point C1.
    Charged,
    /// Effect committed (or recognised as a copy); offset not stored: crash point C2.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Msg {
    pub offset: u8,
    pub stage: Stage,
}

/// A member of the consumer group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Consumer {
    /// The next offset it fetches (meaningful while it owns the partition).
    pub fetch: u8,
    /// Messages received and not finished, by offset, compact at the front.
    pub msgs: [Option<Msg>; MAX_IN_FLIGHT],
}

impl Consumer {
    pub fn msgs(&self) -> impl Iterator<Item = &Msg> {
        self.msgs.iter().flatten()
    }
}

/// The actors that may crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    Api,
    Relay(u8),
    Consumer(u8),
}

impl Actor {
    pub fn bit(self) -> u8 {
        match self {
            Actor::Api => 1,
            Actor::Relay(r) => 2 << r,
            Actor::Consumer(c) => 8 << c,
        }
    }
}

/// The fault budget spent so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Faults {
    /// Faults of every kind so far.
    pub total: u8,
    /// Actors that crashed already (one bit each).
    pub crashed: u8,
    pub crashes: u8,
    pub lost_acks: u8,
    pub refused_sends: u8,
    pub slow_relays: u8,
    pub duplicates: u8,
    pub rebalances: u8,
    pub redis_losses: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct State {
    // client and API
    pub requests: [Request; MAX_INTENTS],
    // the order database
    pub orders: [Option<OrderRow>; MAX_ORDERS],
    pub outbox: [Option<OutboxRow>; MAX_ORDERS],
    pub next_seq: u8,
    /// Claim-by-cursor variant: the highest seq claimed so far.
    pub cursor: u8,
    // direct mode's send log (a file on the API's disk)
    pub send_log: [SendLine; MAX_ORDERS],
    pub relays: [Relay; RELAYS],
    // the broker: one partition, records are event ids
    pub log: [u8; MAX_LOG],
    pub log_len: u8,
    // the consumer group: who owns the partition, and its committed offset
    pub owner: u8,
    pub committed_offset: u8,
    pub consumers: [Consumer; CONSUMERS],
    // the payment database: inbox rows, payments, and the provider's charges
    pub inbox: [bool; MAX_ORDERS],
    pub payments: [u8; MAX_ORDERS],
    pub charges: [u8; MAX_ORDERS],
    // Redis: the fast path's "applied recently"
    pub redis: [bool; MAX_ORDERS],
    // what the per-key order property watches
    pub publication_out_of_order: bool,
    pub effects_out_of_order: bool,
    pub faults: Faults,
}

impl State {
    pub fn log(&self) -> &[u8] {
        &self.log[..usize::from(self.log_len)]
    }
    pub fn order(&self, o: u8) -> Option<&OrderRow> {
        self.orders.get(usize::from(o)).and_then(Option::as_ref)
    }
    pub fn row(&self, o: u8) -> Option<&OutboxRow> {
        self.outbox.get(usize::from(o)).and_then(Option::as_ref)
    }
    pub fn key_of(&self, o: u8) -> Option<u8> {
        self.order(o).map(|r| r.key)
    }
    pub fn seq_of(&self, o: u8) -> u8 {
        self.order(o).map_or(0, |r| r.seq)
    }
    /// Committed order rows, by id.
    pub fn accepted(&self) -> impl Iterator<Item = (u8, &OrderRow)> {
        (0u8..)
            .zip(self.orders.iter())
            .filter_map(|(o, r)| r.as_ref().filter(|r| r.committed).map(|r| (o, r)))
    }
}
