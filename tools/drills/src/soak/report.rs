//! What the soak saw, and the Markdown of it (drill-results/soak.md, docs page 9).

use std::path::Path;

use crate::DrillEnv;

use super::Soak;

/// Table sizes and the send log's size at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sizes {
    pub outbox_rows: i64,
    /// Rows not `SENT` yet: the backlog, which must come back to 0.
    pub outbox_unsent: i64,
    pub outbox_bytes: i64,
    /// payment-service's inbox (order events) and order-service's (payment outcomes).
    pub payment_inbox_rows: i64,
    pub order_inbox_rows: i64,
    pub send_log_bytes: u64,
}

impl Sizes {
    pub async fn measure(env: &DrillEnv, send_log: &Path) -> Self {
        let orders = env.orders_pool().await;
        let payments = env.payments_pool().await;
        let n = |pool: &sqlx::PgPool, sql: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&pool)
                    .await
                    .unwrap_or(-1)
            }
        };
        Self {
            outbox_rows: n(&orders, "SELECT count(*) FROM outbox").await,
            outbox_unsent: n(&orders, "SELECT count(*) FROM outbox WHERE state <> 'SENT'").await,
            outbox_bytes: n(&orders, "SELECT pg_total_relation_size('outbox')").await,
            payment_inbox_rows: n(&payments, "SELECT count(*) FROM inbox").await,
            order_inbox_rows: n(&orders, "SELECT count(*) FROM inbox").await,
            send_log_bytes: std::fs::metadata(send_log).map_or(0, |m| m.len()),
        }
    }
}

/// One process's resident memory at the start of the schedule, just before the schedule
/// killed it, and at the end (the restarted process: younger than the run).
#[derive(Debug, Clone)]
pub struct Rss {
    pub process: &'static str,
    pub start_kib: u64,
    pub before_kill_kib: u64,
    pub end_kib: u64,
}

#[derive(Debug)]
pub struct Outcome {
    pub settings: Soak,
    pub date: String,
    pub load_at_start: String,
    pub load_at_end: String,
    pub timeline: Vec<(f64, String)>,
    pub k6_status: i32,
    pub k6_orders: u64,
    pub k6_failed_requests: u64,
    pub k6_replayed: u64,
    pub hung_up: u64,
    pub copies_sent: u64,
    pub dead_lettered: u64,
    pub failed_rows: i64,
    pub report: reconcile::Report,
    pub sizes_start: Sizes,
    pub sizes_end: Sizes,
    pub rss: Vec<Rss>,
}

impl Outcome {
    pub(super) fn new(settings: Soak, load_at_start: String) -> Self {
        Self {
            settings,
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            load_at_start,
            load_at_end: String::new(),
            timeline: Vec::new(),
            k6_status: -1,
            k6_orders: 0,
            k6_failed_requests: 0,
            k6_replayed: 0,
            hung_up: 0,
            copies_sent: 0,
            dead_lettered: 0,
            failed_rows: 0,
            report: reconcile::Report::default(),
            sizes_start: Sizes::default(),
            sizes_end: Sizes::default(),
            rss: Vec::new(),
        }
    }

    /// Clean: every order k6 placed accepted, nothing lost, applied or charged twice,
    /// every accepted order final, no outbox row given up, every poison message
    /// dead-lettered, the backlog drained.
    pub fn holds(&self) -> bool {
        let r = &self.report;
        self.k6_status == 0
            && r.accepted >= self.k6_orders
            && r.is_clean()
            && r.settled == r.accepted
            && self.failed_rows == 0
            && self.dead_lettered >= crate::matrix::poison::POISON_COUNT as u64
            && self.sizes_end.outbox_unsent == 0
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The outcome as Markdown.
pub fn markdown(o: &Outcome) -> String {
    let r = &o.report;
    let mut out = format!(
        "# Soak\n\nRun of `make soak` on {} (load average {} at the start, {} at the end): \
         k6 at {} orders/s for {} s, a fault every {} s.\n\n",
        o.date,
        o.load_at_start,
        o.load_at_end,
        o.settings.rate,
        o.settings.duration.as_secs(),
        super::fault_interval(o.settings.duration).as_secs()
    );
    out.push_str(&crate::timeline_markdown(&o.timeline));
    out.push_str(&format!(
        "\n| figure | value |\n|---|---:|\n\
         | orders k6 placed (distinct ids) | {} |\n\
         | requests that failed and were retried with the same key | {} |\n\
         | answers replayed from the Idempotency-Key | {} |\n\
         | direct-mode clients that hung up mid-request | {} |\n\
         | orders accepted (k6 and the hung-up clients' committed orders) | {} |\n\
         | published duplicate copies (retries, re-claims, {} made by hand) | {} |\n\
         | duplicates suppressed by the inbox | {} |\n\
         | applied (payments) | {} |\n\
         | settled (PAID / PAYMENT_FAILED) | {} |\n\
         | outbox rows FAILED | {} |\n\
         | dead-lettered (of {} poison messages) | {} |\n\
         | **lost** | **{}** |\n\
         | **applied twice** | **{}** |\n\
         | **double-charged** | **{}** |\n",
        o.k6_orders,
        o.k6_failed_requests,
        o.k6_replayed,
        o.hung_up,
        r.accepted,
        o.copies_sent,
        r.published_duplicate_copies,
        r.duplicates_suppressed_by_inbox,
        r.applied,
        r.settled,
        o.failed_rows,
        crate::matrix::poison::POISON_COUNT,
        o.dead_lettered,
        r.lost,
        r.double_applied,
        r.double_charged,
    ));
    let (a, b) = (&o.sizes_start, &o.sizes_end);
    out.push_str(&format!(
        "\n## Sizes (after the first slot of load, and at the end after settling)\n\n\
         | size | start | end |\n|---|---:|---:|\n\
         | outbox rows | {} | {} |\n\
         | outbox rows not yet SENT | {} | {} |\n\
         | outbox table (bytes, with indexes) | {} | {} |\n\
         | payment-service inbox rows | {} | {} |\n\
         | order-service inbox rows | {} | {} |\n\
         | direct-mode send log (bytes) | {} | {} |\n\n\
         The purge keeps `SENT` outbox rows and inbox ids for `OUTBOX_RETENTION_HOURS` / \
         `DEDUP_RETENTION_HOURS`, whose least is 1 hour; the soak sets both to 1. A run \
         shorter than an hour and a bit ends before any row is old enough to go, so its \
         tables grow with the orders: flat is then only the backlog (unsent rows back to \
         0). The send log is compacted every 1,000 settled events.\n",
        a.outbox_rows,
        b.outbox_rows,
        a.outbox_unsent,
        b.outbox_unsent,
        a.outbox_bytes,
        b.outbox_bytes,
        a.payment_inbox_rows,
        b.payment_inbox_rows,
        a.order_inbox_rows,
        b.order_inbox_rows,
        a.send_log_bytes,
        b.send_log_bytes,
    ));
    out.push_str(
        "\n## Memory (VmRSS)\n\nEach process is killed once by the schedule: the first one \
         is measured after the first slot and just before its kill, the restarted one at \
         the end.\n\n| process | start | before its kill -9 | end (restarted) |\n|---|---:|---:|---:|\n",
    );
    for p in &o.rss {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            p.process,
            mib(p.start_kib),
            mib(p.before_kill_kib),
            mib(p.end_kib)
        ));
    }
    out.push_str(&format!(
        "\nVerdict: {}\n",
        if o.holds() {
            "clean (every placed order accepted, 0 lost, 0 applied twice, 0 double-charged, all settled, no row FAILED, every poison message dead-lettered, backlog drained)"
        } else {
            "FAILED"
        }
    ));
    out
}
