//! A handler that applies through the inbox, as the services do, and records every
//! delivery beside it: delivered vs duplicates suppressed vs applied, all counted by
//! the database.

use lifecycle::Shutdown;
use message_consumer::{
    DedupLayer, EventHeaders, HandleError, Handled, Handler, MessageConsumer, ReceivedMessage,
};
use test_support::StopHandle;

use crate::support::Fixture;
use serde_json::Value;
use sqlx::{Executor, PgPool};

/// `deliveries`: one row per call of the handler, whatever it decided.
/// `inbox_applied`: the effect; no unique key, so a double application shows.
/// `accept_schema`: the highest schema version the handler reads — "the fix" a
/// replay test deploys is raising it.
const SCHEMA: &str = r"
CREATE TABLE deliveries (
    id              bigserial PRIMARY KEY,
    seq             bigint    NOT NULL,
    member          text      NOT NULL,
    kafka_partition integer   NOT NULL,
    kafka_offset    bigint    NOT NULL
);
CREATE TABLE inbox_applied (id bigserial PRIMARY KEY, seq bigint NOT NULL, event_id uuid NOT NULL);
CREATE TABLE accept_schema (only_row boolean PRIMARY KEY DEFAULT true, max_version integer NOT NULL);
INSERT INTO accept_schema (max_version) VALUES (1);
";

/// Starts a group member named `member` with `run`, as a service does, its effects
/// taking `work` each; stop it with the handle.
pub fn start_member(fx: &Fixture, member: &'static str, work: std::time::Duration) -> StopHandle {
    let handler = InboxRecorder {
        pool: fx.pool.clone(),
        group: fx.group.clone(),
        member,
        work,
    };
    let consumer = MessageConsumer::new(fx.settings(), handler).expect("consumer");
    let shutdown = Shutdown::default();
    let task = tokio::spawn(consumer.run(shutdown.clone()));
    StopHandle::for_loop(shutdown, task)
}

/// Creates the inbox and the recorder's tables in the fixture's database.
pub async fn install(pool: &PgPool) {
    inbox::MIGRATOR.run(pool).await.expect("inbox migrations");
    pool.execute(SCHEMA).await.expect("recorder tables");
}

#[derive(Debug, Clone)]
pub struct InboxRecorder {
    pub pool: PgPool,
    pub group: String,
    /// Which group member handled a delivery (for the report).
    pub member: &'static str,
    /// How long the handler is busy before the effect's transaction (a slow provider
    /// call): keeps messages in flight long enough for a rebalance to find them there.
    /// Outside the transaction, so it holds none of the fixture pool's 4 connections:
    /// sixteen handlers queuing for 4 connections would make a revoke wait for the
    /// pool, and the test would measure the pool.
    pub work: std::time::Duration,
}

impl Handler for InboxRecorder {
    async fn handle(&self, message: &ReceivedMessage) -> Result<Handled, HandleError> {
        let event_id = message.event_id()?;
        let body: Value = serde_json::from_slice(message.payload.as_deref().unwrap_or_default())
            .map_err(|e| HandleError::Permanent(format!("malformed JSON: {e}")))?;
        let seq = body["seq"]
            .as_i64()
            .ok_or_else(|| HandleError::Permanent("no seq".to_owned()))?;
        sqlx::query(
            "INSERT INTO deliveries (seq, member, kafka_partition, kafka_offset)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(seq)
        .bind(self.member)
        .bind(message.partition)
        .bind(message.offset)
        .execute(&self.pool)
        .await
        .map_err(transient)?;

        let schema = body["schema_version"].as_i64().unwrap_or(0);
        let max_version: i32 = sqlx::query_scalar("SELECT max_version FROM accept_schema")
            .fetch_one(&self.pool)
            .await
            .map_err(transient)?;
        if schema < 1 || schema > i64::from(max_version) {
            return Err(HandleError::Permanent(format!(
                "unknown schema_version {schema}"
            )));
        }

        tokio::time::sleep(self.work).await;
        let first = inbox::begin_first_delivery(&self.pool, &self.group, event_id, message.into())
            .await
            .map_err(transient)?;
        let Some(mut tx) = first else {
            return Ok(Handled::Duplicate(DedupLayer::Inbox));
        };
        sqlx::query("INSERT INTO inbox_applied (seq, event_id) VALUES ($1, $2)")
            .bind(seq)
            .bind(event_id)
            .execute(&mut *tx)
            .await
            .map_err(transient)?;
        tx.commit().await.map_err(transient)?;
        Ok(Handled::Applied)
    }
}

fn transient(e: sqlx::Error) -> HandleError {
    HandleError::Transient(format!("test database: {e}"))
}

/// Delivered vs suppressed vs applied, from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Handler calls that reached the inbox or the schema check.
    pub delivered: i64,
    /// Deliveries the inbox recognised and skipped.
    pub duplicates_suppressed: i64,
    /// Effects written (a double application counts twice).
    pub applied: i64,
    /// Distinct sequence numbers applied.
    pub distinct_applied: i64,
}

pub async fn tally(pool: &PgPool, group: &str) -> Tally {
    let one = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(group)
            .fetch_one(pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    Tally {
        delivered: one("SELECT count(*) FROM deliveries WHERE $1::text IS NOT NULL").await,
        duplicates_suppressed: one(
            "SELECT coalesce(sum(duplicate_deliveries), 0)::bigint FROM inbox WHERE consumer_group = $1",
        )
        .await,
        applied: one("SELECT count(*) FROM inbox_applied WHERE $1::text IS NOT NULL").await,
        distinct_applied: one(
            "SELECT count(DISTINCT seq) FROM inbox_applied WHERE $1::text IS NOT NULL",
        )
        .await,
    }
}

/// Waits (up to 90 s) until `messages` distinct messages are applied.
pub async fn wait_all_applied(fx: &Fixture, messages: i64) {
    test_support::eventually_with(
        "every message applied",
        std::time::Duration::from_secs(90),
        std::time::Duration::from_millis(100),
        || async {
            let t = tally(&fx.pool, &fx.group).await;
            if t.distinct_applied >= messages {
                Ok(())
            } else {
                Err(t)
            }
        },
    )
    .await;
}

/// Deliveries per member, e.g. `[("A", 140), ("B", 160)]`.
pub async fn deliveries_by_member(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT member, count(*) FROM deliveries GROUP BY member ORDER BY member")
        .fetch_all(pool)
        .await
        .expect("deliveries by member")
}

/// Lets the handler read schema versions up to `version` ("the fix is deployed").
pub async fn accept_schema(pool: &PgPool, version: i32) {
    sqlx::query("UPDATE accept_schema SET max_version = $1")
        .bind(version)
        .execute(pool)
        .await
        .expect("accept schema");
}
