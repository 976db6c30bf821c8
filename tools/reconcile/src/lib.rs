//! The reconciliation checker: did every accepted order get exactly one payment?
//!
//! It counts, from the systems themselves (not from logs or metrics):
//! - **accepted**: orders in the orders database;
//! - **published**: `OrderCreated` records in Kafka, by event id — unique events and
//!   duplicate copies (a relay crash at R2 or a producer retry without idempotence);
//! - **delivered**: events payment-service recorded in its inbox, and the duplicate
//!   deliveries the inbox suppressed;
//! - **applied**: payments, and how many orders have more than one (double-applied);
//! - **lost**: accepted orders that never got a payment.
//!
//! Run it after the system has settled (`make reconcile`); it exits non-zero when
//! anything is lost or applied twice.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// Where to look.
#[derive(Debug, Clone)]
pub struct Sources {
    pub orders_db: PgPool,
    pub payments_db: PgPool,
    pub kafka_bootstrap_servers: String,
    pub order_events_topic: String,
    pub payment_consumer_group: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    pub accepted: u64,
    pub published_unique: u64,
    pub published_duplicate_copies: u64,
    /// Accepted orders whose event is not in Kafka (yet): still in the outbox.
    pub not_yet_published: u64,
    pub delivered_unique: u64,
    pub duplicates_suppressed_by_inbox: u64,
    pub applied: u64,
    pub double_applied: u64,
    /// Orders charged more than once at the provider (its own records).
    pub double_charged: u64,
    /// Accepted orders without a payment.
    pub lost: u64,
    /// Orders that reached PAID or PAYMENT_FAILED.
    pub settled: u64,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.double_applied == 0 && self.double_charged == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Kafka(#[from] kafka_config::KafkaAdminError),
}

pub async fn reconcile(sources: &Sources) -> Result<Report, ReconcileError> {
    Ok(reconcile_detailed(sources).await?.0)
}

/// The report and the accepted orders without a payment (the ids behind `lost`): pub for
/// tools/control-room, which tells orders still in flight from lost ones by their age.
pub async fn reconcile_detailed(sources: &Sources) -> Result<(Report, Vec<Uuid>), ReconcileError> {
    let accepted: HashSet<Uuid> = sqlx::query_scalar::<_, Uuid>("SELECT id FROM orders")
        .fetch_all(&sources.orders_db)
        .await?
        .into_iter()
        .collect();
    let settled: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orders WHERE status <> 'PENDING_PAYMENT'")
            .fetch_one(&sources.orders_db)
            .await?;

    let records = kafka_config::read_topic_to_end(
        &sources.kafka_bootstrap_servers,
        &sources.order_events_topic,
        Duration::from_secs(120),
    )
    .await?;
    let mut copies: HashMap<&str, u64> = HashMap::new();
    let mut published_orders: HashSet<Uuid> = HashSet::new();
    for r in &records {
        if let Some(id) = r.header(kafka_config::headers::EVENT_ID) {
            *copies.entry(id).or_default() += 1;
        }
        if let Some(order) = r.key_str().and_then(|k| Uuid::parse_str(k).ok()) {
            published_orders.insert(order);
        }
    }

    let (delivered, suppressed): (i64, Option<i64>) = sqlx::query_as(
        "SELECT count(*), sum(duplicate_deliveries)::bigint FROM inbox WHERE consumer_group = $1 AND topic = $2",
    )
    .bind(&sources.payment_consumer_group)
    .bind(&sources.order_events_topic)
    .fetch_one(&sources.payments_db)
    .await?;
    // The payments, the teaching table of `DEDUP_BUSINESS_KEY=false` included (it has no
    // UNIQUE(order_id): a second payment for an order shows here).
    let payments: Vec<Uuid> = sqlx::query_scalar(
        "SELECT order_id FROM payments UNION ALL SELECT order_id FROM payments_without_business_key",
    )
    .fetch_all(&sources.payments_db)
    .await?;
    // Charges counted where the money moves, at the provider: more than one charge for an
    // order is a double charge, whatever the payment rows say.
    let double_charged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT order_id FROM provider_charges
                                WHERE order_id IS NOT NULL
                                GROUP BY order_id HAVING count(*) > 1) AS twice",
    )
    .fetch_one(&sources.payments_db)
    .await?;
    let mut per_order: HashMap<Uuid, u64> = HashMap::new();
    for order in &payments {
        *per_order.entry(*order).or_default() += 1;
    }

    let count = |n: usize| n as u64;
    let unapplied: Vec<Uuid> = accepted
        .iter()
        .filter(|id| !per_order.contains_key(id))
        .copied()
        .collect();
    let report = Report {
        accepted: count(accepted.len()),
        published_unique: count(copies.len()),
        published_duplicate_copies: copies.values().map(|c| c - 1).sum(),
        not_yet_published: count(accepted.difference(&published_orders).count()),
        delivered_unique: delivered.unsigned_abs(),
        duplicates_suppressed_by_inbox: suppressed.unwrap_or(0).unsigned_abs(),
        applied: count(per_order.len()),
        double_applied: per_order.values().filter(|n| **n > 1).count() as u64,
        double_charged: double_charged.unsigned_abs(),
        lost: count(unapplied.len()),
        settled: settled.unsigned_abs(),
    };
    Ok((report, unapplied))
}

/// The report as an aligned table.
pub fn render(report: &Report) -> String {
    let rows = [
        ("accepted orders", report.accepted),
        ("published (unique events)", report.published_unique),
        (
            "published duplicate copies",
            report.published_duplicate_copies,
        ),
        ("not yet published", report.not_yet_published),
        ("delivered (unique, inbox)", report.delivered_unique),
        (
            "duplicates suppressed by inbox",
            report.duplicates_suppressed_by_inbox,
        ),
        ("applied (payments)", report.applied),
        ("settled orders (PAID/FAILED)", report.settled),
        ("LOST", report.lost),
        ("DOUBLE-APPLIED", report.double_applied),
        ("DOUBLE-CHARGED (at the provider)", report.double_charged),
    ];
    let mut out = String::new();
    for (name, value) in rows {
        out.push_str(&format!("{name:<32} {value:>8}\n"));
    }
    out.push_str(if report.is_clean() {
        "result: OK — nothing lost, nothing applied twice\n"
    } else {
        "result: FAILED\n"
    });
    out
}
