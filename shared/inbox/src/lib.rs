//! The inbox: how a consumer applies each message once although Kafka may deliver it
//! more than once (docs/en/06-idempotency.md).
//!
//! Call [`record_delivery`] *first* inside the transaction that applies the message's
//! effect. The primary key `(consumer_group, message_id)` decides:
//! - first delivery → the row is inserted; apply the effect and commit both together;
//! - a redelivery (consumer crashed after its commit but before the offset commit, a
//!   rebalance, a producer or relay duplicate) → the row exists; skip the effect.
//!
//! Because the record and the effect commit atomically, there is no window in which the
//! effect is applied but the record is missing, or the other way round. A cache such as
//! Redis cannot give that: it is outside the transaction. It can still spare the
//! database the duplicates it knows about: see [`FastPath`] (`fast_path.rs`).
//!
//! The table does not grow for ever: [`purge_older_than`] (`purge.rs`) forgets ids
//! older than the dedup retention.

mod fast_path;
mod purge;
mod retention;

pub use fast_path::{CALL_BUDGET, FastPath, FastPathStats, PAUSE_AFTER_FAILURE};
pub use purge::purge_older_than;
pub use retention::{
    DEFAULT_RETENTION_HOURS, MAX_PURGE_INTERVAL, dedup_outlives_topic, keep_within_retention,
    purge_periodically, retention_from_lookup, warn_if_shorter_than_topic,
};

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// The table and its key. Services run it with their own migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Where a message came from, stored beside its id for reconciliation.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

impl<'a> From<&'a kafka_config::Record> for Origin<'a> {
    fn from(record: &'a kafka_config::Record) -> Self {
        Self {
            topic: &record.topic,
            partition: record.partition,
            offset: record.offset,
        }
    }
}

/// What the inbox knew about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Never seen: apply the effect in this same transaction.
    First,
    /// Already applied by this consumer group: skip the effect.
    Duplicate,
}

/// Records `message_id` for `consumer_group` in the caller's transaction. On a
/// duplicate the row's `duplicate_deliveries` counter goes up, so suppressed
/// duplicates are counted durably, not just logged.
pub async fn record_delivery(
    conn: &mut PgConnection,
    consumer_group: &str,
    message_id: Uuid,
    origin: Origin<'_>,
) -> Result<Delivery, sqlx::Error> {
    // `xmax = 0` is true for a freshly inserted row and false when ON CONFLICT updated
    // an existing one: one round trip tells first delivery from duplicate.
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO inbox (consumer_group, message_id, topic, kafka_partition, kafka_offset)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (consumer_group, message_id)
           DO UPDATE SET duplicate_deliveries = inbox.duplicate_deliveries + 1
           RETURNING (xmax = 0) AS "inserted!""#,
        consumer_group,
        message_id,
        origin.topic,
        origin.partition,
        origin.offset,
    )
    .fetch_one(conn)
    .await?;
    Ok(if inserted {
        Delivery::First
    } else {
        Delivery::Duplicate
    })
}

/// Opens the effect's transaction with the inbox record as its first statement.
/// - `Some(tx)`: first delivery — apply the effect on `tx`, then commit it;
/// - `None`: a duplicate — its counter is committed; skip the effect.
pub async fn begin_first_delivery(
    pool: &PgPool,
    consumer_group: &str,
    message_id: Uuid,
    origin: Origin<'_>,
) -> Result<Option<Transaction<'static, Postgres>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    match record_delivery(&mut tx, consumer_group, message_id, origin).await? {
        Delivery::First => Ok(Some(tx)),
        Delivery::Duplicate => {
            tx.commit().await?;
            Ok(None)
        }
    }
}
