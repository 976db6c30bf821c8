//! The consume stage: an at-least-once consumer loop with retries and a dead-letter
//! topic (docs/en/04-consume.md).
//!
//! For every message, in partition order:
//! 1. the [`Handler`] applies it (idempotently: the inbox makes a redelivery harmless);
//! 2. a **transient** error (database down, timeout) is retried with exponential
//!    backoff and jitter, on the same message, without storing its offset — the
//!    partition waits rather than skipping ahead (messages are handled one at a time,
//!    so every partition of this member waits with it);
//! 3. a **permanent** error (malformed, unknown schema, business rule) sends the message
//!    to the dead-letter topic with the reason in headers, and the stream moves on;
//! 4. only then is the offset stored for the next background commit.
//!
//! Crash point **C2** (after the effect, before the offset store/commit): the message
//! comes again after a restart or rebalance, and the inbox suppresses it.
//!
//! Each message is handled inside a `process <topic>` CONSUMER span whose parent is
//! read from the message's `traceparent` header, and counted into the service's
//! metrics (consumed, applied, duplicates by layer, dead-lettered, retries, processing
//! time, lag): docs/en/07-tracing-and-metrics.md.

mod consumer;
mod counters;
mod lag;
mod message;
pub mod replay;

pub use consumer::{ConsumerSettings, MessageConsumer, OffsetCommit, Processed};
pub use counters::{LoopCounters, LoopCounts};
pub use message::{DedupLayer, EventHeaders, HandleError, Handled, Handler, ReceivedMessage};
