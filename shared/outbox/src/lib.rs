//! The transactional outbox: the produce stage's "persistence scheme" from the study
//! note, as a mechanism any service can use (docs/en/02-produce.md).
//!
//! 1. [`enqueue`] writes the event into the `outbox` table *inside the caller's
//!    transaction*: the event exists if and only if the business change committed.
//! 2. The [`Relay`] claims unsent rows (an intermediate `SENDING` state with a lease,
//!    by `SKIP LOCKED` or by optimistic lock), publishes them with the reliable producer,
//!    waits for the broker's acknowledgement, and only then marks them `SENT`: each row
//!    as its ack arrives while later claims flow (`RELAY_MODE=stream`, the default), or
//!    a whole wave once every ack of it is in (`RELAY_MODE=wave`).
//!
//! Crash points (the failure matrix in docs/en/01-overview.md):
//! - **R1** after the claim, before the send: nothing was published; the lease runs out
//!   and another pass claims the row again. Nothing is lost.
//! - **R2** (wave mode) after the send, before mark-sent: the event is in Kafka but the
//!   row still says `SENDING`; after the lease it is sent again. A duplicate, never a
//!   loss — the consumer's dedup on the event id absorbs it.
//! - **R3** (stream mode) an ack in hand, not yet marked, with other rows in flight
//!   behind it: as R2 for the acked rows; the rows sent and not yet acked may be in
//!   Kafka or not, and are sent again after the lease. Duplicates, never a loss, and
//!   each key still in order.
//!
//! When sends keep failing, the relay gives a row up after `RELAY_MAX_ATTEMPTS`: state
//! `FAILED`, never `SENT`, its key held back until an operator runs [`retry_failed`].
//! Housekeeping ([`purge_sent_once`]) deletes `SENT` rows older than
//! `OUTBOX_RETENTION_HOURS`.
//!
//! Observability: each row keeps the trace context of the request that wrote it, and
//! the relay's `send <topic>` span continues that trace into Kafka; [`OutboxGauges`]
//! and the relay's counters feed `GET /metrics` (docs/en/07-tracing-and-metrics.md).

mod failed;
mod gauges;
mod lookup;
mod message;
pub mod relay;

pub use failed::{FailedRow, FailedRows, failed_rows, put_back_failed, retry_failed};
pub use gauges::{COUNT_UNSENT_SQL, OutboxGauges};
pub use lookup::{OutboxEvent, events_of};
pub use message::{OutboxMessage, enqueue};
pub use relay::{
    ClaimStrategy, Relay, RelayConfig, RelayError, RelayMode, RelayReport, purge_sent_once,
};

/// The outbox table and its notify trigger. Services run it with their own migrations
/// (see `service_runtime::connect_and_migrate`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
