//! The consume stage: an at-least-once consumer loop with retries and a dead-letter
//! topic (docs/en/04-consume.md).
//!
//! For every message, in key order (messages of different keys run in parallel, see
//! [`parallel`](crate::parallel)):
//! 1. the [`Handler`] applies it (idempotently: the inbox makes a redelivery harmless);
//! 2. an **unavailable** dependency (database connection lost, pool timeout, provider
//!    down) is retried with exponential backoff and jitter, on the same message,
//!    without storing its offset, for as long as it lasts — its key waits rather than
//!    skipping ahead, other keys go on;
//! 3. a **transient** error (a deadlock, an unexpected error) is retried the same way,
//!    at most `CONSUMER_MAX_RETRIES` times, then dead-lettered as "retries exhausted":
//!    a message that can never succeed does not hold its key for ever;
//! 4. a **permanent** error (malformed, unknown schema, business rule, data the
//!    database refuses: SQLSTATE classes 22 and 23, see [`database_error`]) sends the
//!    message to the dead-letter topic with the reason in headers, and the stream
//!    moves on;
//! 5. only then is the offset stored for the next background commit — up to the first
//!    unfinished message of the partition ([`offsets`](crate::offsets)).
//!
//! Crash point **C2** (after the effect, before the offset store/commit): the message
//! comes again after a restart or rebalance, and the inbox suppresses it. Crash point
//! **C3** (after the effect, an earlier message of the partition unfinished, so the
//! offset is not yet contiguous): the same, for every finished message after the gap.
//!
//! Each message is handled inside a `process <topic>` CONSUMER span whose parent is
//! read from the message's `traceparent` header, and counted into the service's
//! metrics (consumed, applied, duplicates by layer, dead-lettered, retries, processing
//! time, lag): docs/en/07-tracing-and-metrics.md.

mod classify;
mod consumer;
mod counters;
mod hand_over;
mod lag;
mod message;
mod offsets;
mod parallel;
pub mod replay;
mod settings;
mod worker;

pub use classify::database_error;
pub use consumer::MessageConsumer;
pub use counters::{LoopCounters, LoopCounts};
pub use hand_over::REVOKE_WAIT;
pub use message::{DedupLayer, EventHeaders, HandleError, Handled, Handler, ReceivedMessage};
pub use settings::{
    ConsumerSettings, ConsumerTuning, DEFAULT_CONCURRENCY, DEFAULT_MAX_RETRIES, MIN_BUFFERED,
    OffsetCommit,
};
pub use worker::Processed;
