//! What the soak saw, and the Markdown of it (drill-results/soak.md, docs page 9).

use std::path::Path;
use std::time::Duration;

use order_service::direct_publish::COMPACT_AFTER_SETTLED;

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

/// The outbox rows not `SENT` (at most 20), each with what the relay last saw.
pub async fn unsent_rows(env: &DrillEnv) -> Vec<String> {
    let orders = env.orders_pool().await;
    sqlx::query_scalar(
        "SELECT format('%s: %s, %s attempts, next claim in %s s, claimed by %s, last error: %s',
                       id, state, attempts,
                       round(extract(epoch FROM available_at - now())),
                       coalesce(claimed_by, '-'), coalesce(last_error, '-'))
           FROM outbox WHERE state <> 'SENT' ORDER BY seq LIMIT 20",
    )
    .fetch_all(&orders)
    .await
    .unwrap_or_default()
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
    /// The outbox rows still not `SENT` when the soak counts, one line each: why an
    /// order is still unpaid.
    pub unsent_rows: Vec<String>,
    pub report: reconcile::Report,
    /// The sizes before each fault and once more at the end (seconds into the run).
    pub sizes: Vec<(f64, Sizes)>,
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
            unsent_rows: Vec::new(),
            report: reconcile::Report::default(),
            sizes: Vec::new(),
            rss: Vec::new(),
        }
    }

    /// Clean: every order k6 placed accepted, nothing lost, applied or charged twice,
    /// every accepted order final, no outbox row given up, every poison message
    /// dead-lettered, the backlog drained, and every size flat once the purges caught
    /// up (when the run was long enough to tell).
    pub fn holds(&self) -> bool {
        let r = &self.report;
        self.k6_status == 0
            && r.accepted >= self.k6_orders
            && r.is_clean()
            && r.settled == r.accepted
            && self.failed_rows == 0
            && self.dead_lettered >= crate::matrix::poison::POISON_COUNT as u64
            && self.sizes.last().is_some_and(|(_, s)| s.outbox_unsent == 0)
            && self
                .flatness()
                .iter()
                .all(|(_, verdict)| !matches!(verdict, Flat::Grew { .. }))
    }

    /// When the purges have caught up: one retention (every row older is gone) and two
    /// purge intervals (one for a pass to come, one to spare).
    pub fn steady_from(&self) -> Duration {
        let retention = self.settings.retention;
        retention + 2 * lifecycle::purge_interval(retention, inbox::MAX_PURGE_INTERVAL)
    }

    /// When the send log has been compacted twice: it drops its settled events once it
    /// holds `COMPACT_AFTER_SETTLED`, which at the direct-mode rate takes a while.
    pub fn send_log_steady_from(&self) -> Duration {
        let events = 2 * COMPACT_AFTER_SETTLED as u64;
        Duration::from_secs(events / u64::from(self.settings.direct_rate()))
    }

    /// Whether the tables' retention window is long enough to judge. An outage of
    /// length d holds back d of traffic, which then lands at once: for a while the
    /// window holds up to (retention + d) of rows, 1 + d / retention times its steady
    /// size. With a retention of at least 5 × the longest outage that stays within the
    /// 5/4 [`Flat::judge`] allows; with less, the minute without brokers alone reads
    /// as growth (a 4-minute run's 1-minute window: 1,573 → 1,979 rows, 0 lost).
    /// DURATION of 20 minutes and more.
    pub fn tables_judged(&self) -> bool {
        self.settings.retention >= 5 * super::LONGEST_OUTAGE
    }

    /// Each purged size judged on the samples taken after its steady point.
    pub fn flatness(&self) -> Vec<(&'static str, Flat)> {
        let series = |from: Duration, size: &dyn Fn(&Sizes) -> u64| -> Flat {
            let samples: Vec<u64> = self
                .sizes
                .iter()
                .filter(|(t, _)| *t >= from.as_secs_f64())
                .map(|(_, s)| size(s))
                .collect();
            Flat::judge(&samples)
        };
        let table = |size: fn(&Sizes) -> i64| -> Flat {
            if self.tables_judged() {
                series(self.steady_from(), &|s| size(s).max(0).unsigned_abs())
            } else {
                Flat::WindowTooShort
            }
        };
        vec![
            ("outbox rows", table(|s| s.outbox_rows)),
            (
                "payment-service inbox rows",
                table(|s| s.payment_inbox_rows),
            ),
            ("order-service inbox rows", table(|s| s.order_inbox_rows)),
            (
                "direct-mode send log (bytes)",
                series(self.send_log_steady_from(), &|s| s.send_log_bytes),
            ),
        ]
    }
}

/// Whether a size stayed flat once its purge caught up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flat {
    /// Fewer than two samples after the steady point: the run was too short to tell.
    NotReached,
    /// The retention window is under 5 × the longest outage
    /// ([`Outcome::tables_judged`]): one outage's backlog would read as growth.
    WindowTooShort,
    /// The largest value of the later half of the samples is at most 5/4 of the earlier
    /// half's: bounded (a sawtooth of purges or compactions passes, growth does not).
    Yes {
        earlier_max: u64,
        later_max: u64,
    },
    Grew {
        earlier_max: u64,
        later_max: u64,
    },
}

impl Flat {
    /// A table that keeps a fixed window of rows under a steady load holds about the
    /// same number at every sample; one that is never purged grows with the run (from
    /// 18 to 60 minutes of rows in a 60-minute soak: the later maximum is 1.5 times the
    /// earlier one or more).
    pub fn judge(samples: &[u64]) -> Self {
        if samples.len() < 2 {
            return Self::NotReached;
        }
        let (earlier, later) = samples.split_at(samples.len() / 2);
        let earlier_max = earlier.iter().copied().max().unwrap_or(0);
        let later_max = later.iter().copied().max().unwrap_or(0);
        if later_max.saturating_mul(4) <= earlier_max.saturating_mul(5) {
            Self::Yes {
                earlier_max,
                later_max,
            }
        } else {
            Self::Grew {
                earlier_max,
                later_max,
            }
        }
    }

    fn describe(self) -> String {
        match self {
            Self::NotReached => "not judged: the run ends too soon after the steady point".into(),
            Self::WindowTooShort => format!(
                "not judged: the retention is under 5 × the longest outage ({} s); DURATION=20m and more",
                super::LONGEST_OUTAGE.as_secs()
            ),
            Self::Yes {
                earlier_max,
                later_max,
            } => format!(
                "flat (largest {earlier_max} in the earlier half, {later_max} in the later)"
            ),
            Self::Grew {
                earlier_max,
                later_max,
            } => format!(
                "**GREW** (largest {earlier_max} in the earlier half, {later_max} in the later)"
            ),
        }
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
         | duplicates suppressed by the inbox (on the rows the purge has kept) | {} |\n\
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
    out.push_str(&format!(
        "\n## Sizes\n\nMeasured before each fault and at the end after settling. The outbox \
         keeps `SENT` rows and the inboxes keep event ids for {} s (`OUTBOX_RETENTION_HOURS` \
         and `DEDUP_RETENTION_HOURS` set to a quarter of the run); each purge runs every \
         tenth of its retention. From {} s on, the purges have caught up: a size that is \
         purged stays flat: about {} orders/s × the retention in the outbox, {}/s in the \
         inboxes (the direct-mode orders too). The send log is compacted every {} settled \
         events, twice by {} s.\n\n\
         | s | outbox rows | not yet SENT | outbox bytes | payment-service inbox | order-service inbox | send log bytes |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n",
        o.settings.retention.as_secs(),
        o.steady_from().as_secs(),
        o.settings.rate,
        o.settings.rate + o.settings.direct_rate(),
        COMPACT_AFTER_SETTLED,
        o.send_log_steady_from().as_secs(),
    ));
    for (t, s) in &o.sizes {
        out.push_str(&format!(
            "| {t:.0} | {} | {} | {} | {} | {} | {} |\n",
            s.outbox_rows,
            s.outbox_unsent,
            s.outbox_bytes,
            s.payment_inbox_rows,
            s.order_inbox_rows,
            s.send_log_bytes,
        ));
    }
    if !o.unsent_rows.is_empty() {
        out.push_str("\nOutbox rows not yet `SENT` when the soak counted:\n\n");
        for row in &o.unsent_rows {
            out.push_str(&format!("- {row}\n"));
        }
    }
    out.push_str("\n| size | after the purges caught up |\n|---|---|\n");
    for (size, verdict) in o.flatness() {
        out.push_str(&format!("| {size} | {} |\n", verdict.describe()));
    }
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
            "clean (every placed order accepted, 0 lost, 0 applied twice, 0 double-charged, all settled, no row FAILED, every poison message dead-lettered, backlog drained, no size grew)"
        } else {
            "FAILED"
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Flat, Outcome};
    use crate::soak::{Soak, retention_for};

    #[test]
    fn tables_are_judged_only_with_a_window_five_times_the_longest_outage() {
        let verdicts = |minutes: u64| {
            let duration = Duration::from_secs(60 * minutes);
            let soak = Soak {
                duration,
                rate: 20,
                retention: retention_for(duration),
            };
            Outcome::new(soak, String::new()).flatness()
        };
        // 4 minutes: a 1-minute window, which the minute without brokers fills alone.
        let short = verdicts(4);
        assert!(short[..3].iter().all(|(_, v)| *v == Flat::WindowTooShort));
        assert_eq!(short[3].1, Flat::NotReached, "the send log is judged apart");
        // 20 minutes: a 5-minute window; judged (here without samples).
        assert!(verdicts(20).iter().all(|(_, v)| *v == Flat::NotReached));
    }

    #[test]
    fn a_purged_window_is_flat_and_a_growing_table_is_not() {
        // 20 orders/s kept 15 min, sampled every 4.6 min from the 18th minute.
        let kept = [
            18_400, 18_100, 18_900, 17_800, 18_600, 18_300, 18_700, 17_900, 16_000,
        ];
        assert!(matches!(Flat::judge(&kept), Flat::Yes { .. }));
        // Compactions: a sawtooth.
        let sawtooth = [90_000, 12_000, 101_000, 40_000, 88_000, 5_000];
        assert!(matches!(Flat::judge(&sawtooth), Flat::Yes { .. }));
        // Never purged: every row since the start.
        let grows = [
            22_000, 27_600, 33_000, 38_800, 44_400, 50_000, 55_500, 61_000, 66_700,
        ];
        assert!(matches!(Flat::judge(&grows), Flat::Grew { .. }));
        assert_eq!(Flat::judge(&[18_000]), Flat::NotReached);
        assert_eq!(Flat::judge(&[]), Flat::NotReached);
    }
}
