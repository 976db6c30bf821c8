//! The Redis fast path in front of the inbox (docs/en/06-idempotency.md).
//!
//! Most duplicates arrive soon after the original: the relay re-sends after crash point
//! R2, the consumer gets a message again after C2 or a rebalance. Before opening a
//! database transaction a consumer asks Redis whether it has seen the message id
//! recently ([`FastPath::seen_recently`]); a hit skips the database altogether. Once the
//! effect's transaction has committed, the consumer records the id with `SET NX` and a
//! TTL ([`FastPath::remember`]).
//!
//! **Why Redis alone is not enough.** The inbox row stays the source of truth; Redis
//! only saves work, for three reasons. *It is not in the effect's transaction:* the key
//! and the effect cannot commit together. Set before the commit, a rollback or a crash
//! (C1) leaves "seen" behind for an effect that never happened, and the redelivery that
//! should repair it is skipped: the message is lost. Set after the commit, as here, a
//! crash in between leaves the key missing, which costs one trip to the inbox and
//! nothing else. *Eviction:* under `maxmemory` Redis drops keys, and a restart without
//! persistence drops all of them; a dedup store that forgets lets the next copy through.
//! *TTL:* the keys expire by design, to bound memory, so a duplicate that comes later
//! than the TTL (a replay from an old offset, a relay that was down for a day) finds
//! nothing. Each of these turns into a miss, and a miss falls through to the inbox,
//! which catches the duplicate in the same transaction as the effect. A hit can only
//! come from a key written after a commit, so skipping on a hit is safe.
//!
//! **Redis being down** makes handling slower, never wrong and never failed: every call
//! has a budget of [`CALL_BUDGET`]; an error or a timeout counts as "not seen" (or "not
//! remembered") and switches the fast path off for [`PAUSE_AFTER_FAILURE`], so a dead
//! Redis costs one failed call per pause, not one per message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::FromRedisValue;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use uuid::Uuid;

/// The longest one Redis call may take, connecting included. Far above a healthy
/// Redis's round trip, far below what would slow a consumer down.
pub const CALL_BUDGET: Duration = Duration::from_millis(50);

/// After a failed call, how long the fast path stays off before it asks Redis again.
pub const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// A seen-recently set of message ids per consumer group, in Redis. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FastPath {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    redis: ConnectionManager,
    created: Instant,
    /// Milliseconds since `created` before which Redis is not asked.
    paused_until_ms: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    remembered: AtomicU64,
    unavailable: AtomicU64,
}

/// What the fast path did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FastPathStats {
    /// Lookups Redis answered "seen": deliveries the caller skipped without the database.
    pub hits: u64,
    /// Lookups Redis answered "not seen": the caller went to the inbox.
    pub misses: u64,
    /// Ids newly recorded after a commit.
    pub remembered: u64,
    /// Lookups and records that went without Redis (failed, timed out, or skipped
    /// while paused after a failure).
    pub unavailable: u64,
}

impl FastPath {
    /// Wraps `client` without connecting: the first call connects, so a Redis that is
    /// down at start-up does not stop the service from starting.
    pub fn new(client: redis::Client) -> Result<Self, redis::RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_BUDGET))
            .set_response_timeout(Some(CALL_BUDGET))
            // One connection attempt per reconnect: the pause after a failure is the
            // backoff, and a message never waits for a series of attempts.
            .set_number_of_retries(0);
        let redis = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                redis,
                created: Instant::now(),
                paused_until_ms: AtomicU64::new(0),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                remembered: AtomicU64::new(0),
                unavailable: AtomicU64::new(0),
            }),
        })
    }

    /// Has `group` committed the effect of message `id` recently? `false` when Redis
    /// does not know, or does not answer: the caller then asks the inbox.
    pub async fn seen_recently(&self, group: &str, id: Uuid) -> bool {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(key(group, id));
        match self.call::<bool>(&cmd).await {
            Some(true) => {
                self.inner.hits.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(false) => {
                self.inner.misses.fetch_add(1, Ordering::Relaxed);
                false
            }
            None => false,
        }
    }

    /// Records that `group` has committed the effect of message `id`, for `ttl`.
    /// Call it only *after* the commit (see the module doc). Best effort: a failure
    /// only means the next copy is caught by the inbox instead.
    pub async fn remember(&self, group: &str, id: Uuid, ttl: Duration) {
        let mut cmd = redis::cmd("SET");
        // NX: the first record of an id stands, and later copies do not stretch its TTL.
        // EX: memory stays bounded; a Redis TTL is whole seconds, at least one.
        cmd.arg(key(group, id))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl.as_secs().max(1));
        if let Some(Some(_ok)) = self.call::<Option<String>>(&cmd).await {
            self.inner.remembered.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> FastPathStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        FastPathStats {
            hits: load(&self.inner.hits),
            misses: load(&self.inner.misses),
            remembered: load(&self.inner.remembered),
            unavailable: load(&self.inner.unavailable),
        }
    }

    /// One Redis call within the budget, or `None`; never an error.
    async fn call<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        if self.now_ms() < self.inner.paused_until_ms.load(Ordering::Relaxed) {
            self.inner.unavailable.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let mut conn = self.inner.redis.clone();
        let error = match tokio::time::timeout(CALL_BUDGET, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {CALL_BUDGET:?}"),
        };
        self.inner.unavailable.fetch_add(1, Ordering::Relaxed);
        let pause = u64::try_from(PAUSE_AFTER_FAILURE.as_millis()).unwrap_or(u64::MAX);
        self.inner
            .paused_until_ms
            .store(self.now_ms().saturating_add(pause), Ordering::Relaxed);
        tracing::warn!(
            %error,
            "Redis fast path unavailable: deduplicating through the inbox alone for {PAUSE_AFTER_FAILURE:?}"
        );
        None
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.created.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// One key per (consumer group, message id), like the inbox's primary key: each group
/// applies every message once on its own.
fn key(group: &str, id: Uuid) -> String {
    format!("inbox:seen:{group}:{id}")
}
