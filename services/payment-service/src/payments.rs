//! Applying an `OrderCreated` event: one payment per order, however often it arrives.
//!
//! First, when `DEDUP_FAST_PATH` is on, Redis is asked whether this event id was applied
//! recently; a hit skips everything below (counted in `inbox::FastPathStats::hits`).
//! A miss, or Redis not answering, goes on to the database, which decides.
//!
//! Then, in one database transaction, in this order:
//! 1. the inbox record for the event id — a redelivery stops here (skipped, counted);
//! 2. the charge at the provider, keyed by the order id (outside the transaction,
//!    idempotent on its side — see `provider.rs`);
//! 3. the payment row, whose `UNIQUE(order_id)` is a second line of defence: an event
//!    with a new id for an already-paid order (e.g. replayed from elsewhere) cannot pay
//!    twice;
//! 4. the outcome event in this service's outbox, relayed by the shared relay.
//!
//! Crash point **C1** (inside the transaction, before commit): nothing of 1, 3, 4 is
//! kept; the message comes again and the provider answers the retried charge from its
//! records.
//!
//! Last, after the commit, the event id is remembered in Redis for `DEDUP_TTL_SECS`.

use std::time::Duration;

use chrono::Utc;
use inbox::FastPath;
use message_consumer::{DedupLayer, EventHeaders, HandleError, Handled, Handler, ReceivedMessage};
use outbox::OutboxMessage;
use sqlx::PgPool;
use telemetry::Metrics;
use telemetry::metrics::names;
use uuid::Uuid;

use crate::events::{
    ORDER_CREATED, OrderCreated, PAYMENT_FAILED, PAYMENT_SUCCEEDED, PaymentOutcome, SCHEMA_VERSION,
};
use crate::provider::{Charge, PaymentProvider, ProviderError};

/// The handler for `order-events`.
#[derive(Debug, Clone)]
pub struct Payments {
    pub pool: PgPool,
    pub provider: PaymentProvider,
    pub consumer_group: String,
    pub payment_events_topic: String,
    /// The Redis fast path in front of the inbox; `None` when `DEDUP_FAST_PATH=false`.
    pub fast_path: Option<FastPath>,
    /// `DEDUP_TTL_SECS`: how long the fast path remembers an applied event id.
    pub dedup_ttl: Duration,
    /// `DEDUP_INBOX=false`, an unsafe teaching toggle: skip the inbox entirely.
    pub inbox_off: bool,
    /// `DEDUP_BUSINESS_KEY=false`, an unsafe teaching toggle: write the payment into
    /// the teaching table without `UNIQUE(order_id)`.
    pub business_key_off: bool,
    /// The service's registry: `order_to_payment_seconds` is recorded here. (What the
    /// handler returns is counted by the consumer loop, per defence layer.)
    pub metrics: Metrics,
}

impl Handler for Payments {
    async fn handle(&self, message: &ReceivedMessage) -> Result<Handled, HandleError> {
        let event_id = message.event_id()?;
        let order = parse_order_created(message)?;

        if let Some(fast_path) = &self.fast_path {
            // A hit means the effect committed (ids are remembered only after the
            // commit), so skipping is safe; a miss or a silent Redis proves nothing and
            // goes on to the inbox.
            if fast_path
                .seen_recently(&self.consumer_group, event_id)
                .await
            {
                tracing::info!(%event_id, order_id = %order.order_id, "duplicate OrderCreated suppressed by the Redis fast path");
                return Ok(Handled::Duplicate(DedupLayer::Redis));
            }
        }

        let handled = self.apply_once(message, event_id, &order).await?;

        if let Some(fast_path) = &self.fast_path {
            // Remember only now, after the commit. Remembered before it, a rollback or a
            // crash (C1) would leave "seen" for a payment that never happened, and the
            // redelivery meant to repair that would be skipped: a lost message. A crash
            // between the commit and this line only leaves the id unknown to Redis; the
            // next copy then costs one trip to the inbox (inbox/src/fast_path.rs).
            fast_path
                .remember(&self.consumer_group, event_id, self.dedup_ttl)
                .await;
        }
        Ok(handled)
    }
}

impl Payments {
    /// The database transaction: inbox record, charge, payment row, outcome event.
    /// Returns once it has committed, whether the event was applied now or before.
    async fn apply_once(
        &self,
        message: &ReceivedMessage,
        event_id: Uuid,
        order: &OrderCreated,
    ) -> Result<Handled, HandleError> {
        let first = if self.inbox_off {
            // The unsafe toggle: every delivery looks like the first one.
            Some(self.pool.begin().await.map_err(database)?)
        } else {
            inbox::begin_first_delivery(&self.pool, &self.consumer_group, event_id, message.into())
                .await
                .map_err(database)?
        };
        let Some(mut tx) = first else {
            tracing::info!(%event_id, order_id = %order.order_id, "duplicate OrderCreated suppressed by the inbox");
            return Ok(Handled::Duplicate(DedupLayer::Inbox));
        };

        let charge = self
            .provider
            .charge(order.order_id, order.amount_minor, &order.currency)
            .await
            .map_err(provider_error)?;
        let (status, event_type, reason) = match charge {
            Charge::Approved => ("SUCCEEDED", PAYMENT_SUCCEEDED, None),
            Charge::Declined(reason) => ("FAILED", PAYMENT_FAILED, Some(reason)),
        };

        let payment_id = Uuid::now_v7();
        let inserted = if self.business_key_off {
            // The teaching table (its migration says so): no business key to stop a
            // second payment for the order.
            sqlx::query!(
                r#"INSERT INTO payments_without_business_key (id, order_id, amount_minor, currency, status)
                   VALUES ($1, $2, $3, $4, $5)"#,
                payment_id,
                order.order_id,
                order.amount_minor,
                order.currency,
                status,
            )
            .execute(&mut *tx)
            .await
        } else {
            sqlx::query!(
                r#"INSERT INTO payments (id, order_id, amount_minor, currency, status)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (order_id) DO NOTHING"#,
                payment_id,
                order.order_id,
                order.amount_minor,
                order.currency,
                status,
            )
            .execute(&mut *tx)
            .await
        }
        .map_err(database)?;
        if inserted.rows_affected() == 0 {
            // The business key caught what the inbox could not: a different event id for
            // an order that already has its payment. Keep the inbox row, publish nothing.
            tx.commit().await.map_err(database)?;
            tracing::warn!(%event_id, order_id = %order.order_id, "duplicate payment suppressed by UNIQUE(order_id)");
            return Ok(Handled::Duplicate(DedupLayer::BusinessKey));
        }

        let outcome = PaymentOutcome {
            schema_version: SCHEMA_VERSION,
            order_id: order.order_id,
            payment_id,
            reason,
        };
        let message = OutboxMessage::new(
            self.payment_events_topic.clone(),
            order.order_id.to_string(),
            event_type,
            serde_json::to_value(&outcome).unwrap_or_default(),
        )
        .with_header("schema-version", SCHEMA_VERSION.to_string());
        // Written inside the consumer's `process` span: the outcome row keeps its trace
        // context, so the outcome event continues the order's trace back to
        // order-service (docs/en/07-tracing-and-metrics.md).
        outbox::enqueue(&mut tx, &message).await.map_err(database)?;
        // Crash point C1: everything above is still uncommitted and will roll back.
        lifecycle::CrashPoint::C1.reached();
        tx.commit().await.map_err(database)?;
        // Inside the message's `process` span: the line carries the order's trace id.
        tracing::info!(%event_id, order_id = %order.order_id, status, "payment applied");
        if let Some(created_at) = order.created_at {
            // The end-to-end latency of the produce and store stages and our own work:
            // from the order's commit (its timestamp) to this payment's commit.
            let waited = (Utc::now() - created_at).to_std().unwrap_or_default();
            self.metrics
                .histogram(names::ORDER_TO_PAYMENT_SECONDS, &[])
                .record(waited);
        }
        Ok(Handled::Applied)
    }
}

/// Decoding and validation; everything that fails here will never succeed, so it is
/// permanent (dead-lettered with the reason).
fn parse_order_created(message: &ReceivedMessage) -> Result<OrderCreated, HandleError> {
    if message.event_type() != Some(ORDER_CREATED) {
        return Err(HandleError::Permanent(format!(
            "unexpected event-type {:?}",
            message.event_type()
        )));
    }
    let payload = message.payload.as_deref().unwrap_or_default();
    let order: OrderCreated = serde_json::from_slice(payload)
        .map_err(|e| HandleError::Permanent(format!("malformed OrderCreated: {e}")))?;
    if order.schema_version != SCHEMA_VERSION {
        return Err(HandleError::Permanent(format!(
            "unknown schema_version {} (this service reads {SCHEMA_VERSION})",
            order.schema_version
        )));
    }
    // Every field is checked here, against what the payments table and the provider
    // accept: a value the database would refuse (a currency too long for `char(3)`)
    // must be a dead letter now, not a retry loop later.
    if order.amount_minor <= 0 || order.amount_minor > MAX_AMOUNT_MINOR {
        return Err(HandleError::Permanent(format!(
            "business rule: amount_minor {} is not in 1..={MAX_AMOUNT_MINOR}",
            order.amount_minor
        )));
    }
    if order.currency.len() != 3 || !order.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HandleError::Permanent(format!(
            "business rule: currency {:?} is not three capital letters (ISO 4217)",
            order.currency
        )));
    }
    Ok(order)
}

/// The largest amount this service charges (the order API's own bound).
const MAX_AMOUNT_MINOR: i64 = 10_000_000_000;

/// A database error: unreachable (waited out), refused data (dead-lettered) or other
/// (retried up to the cap); `message_consumer::database_error` reads the SQLSTATE.
fn database(e: sqlx::Error) -> HandleError {
    message_consumer::database_error("payments database", &e)
}

/// The provider down is a dependency unavailable: waited out, never a dead letter.
fn provider_error(e: ProviderError) -> HandleError {
    match e {
        ProviderError::Unavailable => HandleError::Unavailable(e.to_string()),
        ProviderError::Storage(db) => message_consumer::database_error("payment provider", &db),
    }
}
