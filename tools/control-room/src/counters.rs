//! The live counters, read once a second from the systems themselves: the databases
//! (accepted, outbox, applied, PAID — so a k6 run from a terminal shows too), payment-
//! service's `GET /stats` (consumed, duplicates per layer, dead letters) and the cluster
//! (brokers, in-sync replicas, the consumer group's lag).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;

use crate::Shared;
use crate::stack::Targets;

/// One second's picture.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub at_ms: i64,
    pub accepted: Option<i64>,
    pub outbox_backlog: Option<i64>,
    pub outbox_oldest_age_s: Option<f64>,
    pub published: Option<i64>,
    pub consumed: u64,
    pub applied: Option<i64>,
    pub paid: Option<i64>,
    pub payment_failed: Option<i64>,
    pub duplicates_redis: u64,
    pub duplicates_inbox: Option<i64>,
    pub duplicates_business_key: u64,
    pub dead_lettered: u64,
    pub consumer_lag: Option<i64>,
    pub services: Vec<ServiceState>,
    pub brokers: Vec<BrokerState>,
    pub partitions: Option<Partitions>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceState {
    pub name: String,
    pub up: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct BrokerState {
    pub node: i32,
    pub address: String,
    /// The port accepts connections (a frozen JVM still does: the kernel answers).
    pub port_open: bool,
    /// Listed in the cluster's metadata just now.
    pub in_metadata: bool,
}

/// The order topic's partitions as the metadata describes them.
#[derive(Debug, Clone, Serialize)]
pub struct Partitions {
    pub total: usize,
    pub under_replicated: usize,
    /// In-sync replicas below `min.insync.replicas=2`: `acks=all` sends are refused.
    pub under_min_isr: usize,
    pub leaderless: usize,
    /// Leader node of partition 0 (what "freeze the leader" freezes).
    pub leader_of_0: Option<i32>,
}

/// The latest snapshot and the last five minutes of it, for the chart.
#[derive(Debug, Default)]
pub struct Live {
    inner: Mutex<LiveInner>,
}

#[derive(Debug, Default)]
struct LiveInner {
    latest: Snapshot,
    history: VecDeque<Snapshot>,
    stats: Accumulated,
}

impl Live {
    pub fn latest(&self) -> Snapshot {
        self.inner
            .lock()
            .map(|i| i.latest.clone())
            .unwrap_or_default()
    }

    /// (time, accepted, applied) per second, the chart's series.
    pub fn history(&self) -> Vec<(i64, i64, i64)> {
        self.inner
            .lock()
            .map(|i| {
                i.history
                    .iter()
                    .map(|s| (s.at_ms, s.accepted.unwrap_or(0), s.applied.unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// payment-service's `/stats` are counters of the running process: a restart starts them
/// at 0. Summed over the processes, so a kill -9 does not make suppressions vanish.
#[derive(Debug, Default, Clone, Copy)]
struct Accumulated {
    earlier: [u64; 4],
    last: [u64; 4],
}

impl Accumulated {
    fn update(&mut self, now: Option<[u64; 4]>) -> [u64; 4] {
        if let Some(now) = now {
            // Any counter going backwards means a new process.
            if now.iter().zip(self.last).any(|(n, l)| *n < l) {
                for i in 0..4 {
                    self.earlier[i] += self.last[i];
                }
            }
            self.last = now;
        }
        std::array::from_fn(|i| self.earlier[i] + self.last[i])
    }
}

pub async fn run(shared: Arc<Shared>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .unwrap_or_default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut kafka_every = 0u32;
    let mut last_kafka = (Vec::new(), None);
    let mut lag = None;
    loop {
        tick.tick().await;
        let t = &shared.targets;
        // The metadata every 2 s: a client per probe, and a dead cluster answers slowly.
        if kafka_every % 2 == 0 {
            (last_kafka, lag) = tokio::join!(
                kafka_state(t),
                consumer_lag(
                    t.kafka.clone(),
                    t.payment_group.clone(),
                    t.order_topic.clone()
                )
            );
        }
        kafka_every += 1;
        let (db, stats, services) = tokio::join!(
            db_counts(t),
            payment_stats(&http, &t.payment_url),
            service_states(&http, t),
        );
        let mut live = match shared.counters.inner.lock() {
            Ok(l) => l,
            Err(_) => return,
        };
        let [consumed, redis, business_key, dead] = live.stats.update(stats);
        let snapshot = Snapshot {
            at_ms: chrono::Utc::now().timestamp_millis(),
            accepted: db.accepted,
            outbox_backlog: db.backlog,
            outbox_oldest_age_s: db.oldest_age_s,
            published: db.published,
            consumed,
            applied: db.applied,
            paid: db.paid,
            payment_failed: db.failed,
            duplicates_redis: redis,
            duplicates_inbox: db.dup_inbox,
            duplicates_business_key: business_key,
            dead_lettered: dead,
            consumer_lag: lag,
            services,
            brokers: last_kafka.0.clone(),
            partitions: last_kafka.1.clone(),
        };
        live.history.push_back(snapshot.clone());
        while live.history.len() > 300 {
            live.history.pop_front();
        }
        live.latest = snapshot;
    }
}

#[derive(Debug, Default)]
struct DbCounts {
    accepted: Option<i64>,
    paid: Option<i64>,
    failed: Option<i64>,
    backlog: Option<i64>,
    published: Option<i64>,
    oldest_age_s: Option<f64>,
    applied: Option<i64>,
    dup_inbox: Option<i64>,
}

async fn db_counts(t: &Targets) -> DbCounts {
    let orders = async {
        sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT count(*), count(*) FILTER (WHERE status = 'PAID'),
                    count(*) FILTER (WHERE status = 'PAYMENT_FAILED') FROM orders",
        )
        .fetch_one(&t.orders_db)
        .await
        .ok()
    };
    let outbox = async {
        sqlx::query_as::<_, (i64, i64, Option<f64>)>(
            "SELECT count(*) FILTER (WHERE state <> 'SENT'), count(*) FILTER (WHERE state = 'SENT'),
                    extract(epoch FROM now() - min(created_at) FILTER (WHERE state <> 'SENT'))::float8
             FROM outbox WHERE topic = $1",
        )
        .bind(&t.order_topic)
        .fetch_one(&t.orders_db)
        .await
        .ok()
    };
    let payments = async {
        // The teaching table of `DEDUP_BUSINESS_KEY=false` counts too (as in reconcile).
        scalar(
            &t.payments_db,
            "SELECT (SELECT count(*) FROM payments) + (SELECT count(*) FROM payments_without_business_key)",
        )
        .await
    };
    let inbox = async {
        sqlx::query_scalar::<_, i64>(
            "SELECT coalesce(sum(duplicate_deliveries), 0)::bigint FROM inbox
             WHERE consumer_group = $1 AND topic = $2",
        )
        .bind(&t.payment_group)
        .bind(&t.order_topic)
        .fetch_one(&t.payments_db)
        .await
        .ok()
    };
    let (o, ob, applied, dup_inbox) = tokio::join!(orders, outbox, payments, inbox);
    DbCounts {
        accepted: o.map(|o| o.0),
        paid: o.map(|o| o.1),
        failed: o.map(|o| o.2),
        backlog: ob.map(|o| o.0),
        published: ob.map(|o| o.1),
        oldest_age_s: ob.and_then(|o| o.2),
        applied,
        dup_inbox,
    }
}

async fn scalar(pool: &PgPool, sql: &'static str) -> Option<i64> {
    sqlx::query_scalar(sql).fetch_one(pool).await.ok()
}

/// consumed, duplicates by Redis, by business key, dead letters (the inbox's own count
/// is read from its table, which outlives the process).
async fn payment_stats(http: &reqwest::Client, base: &str) -> Option<[u64; 4]> {
    let stats: serde_json::Value = http
        .get(format!("{base}/stats"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let n = |k: &str| stats[k].as_u64().unwrap_or(0);
    Some([
        n("consumed"),
        n("duplicates_redis"),
        n("duplicates_business_key"),
        n("dead_lettered"),
    ])
}

/// payment-service's lag on the order topic, from the cluster itself: per partition the
/// high watermark minus the group's committed offset, summed. Read as the group (offset
/// fetch only: the probe never joins it), so it keeps counting while the service is down.
async fn consumer_lag(kafka: String, group: String, topic: String) -> Option<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_millis(1500);
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &kafka)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .ok()?;
        let metadata = consumer.fetch_metadata(Some(&topic), timeout).ok()?;
        let partitions: Vec<i32> = metadata
            .topics()
            .first()?
            .partitions()
            .iter()
            .map(|p| p.id())
            .collect();
        let mut list = rdkafka::TopicPartitionList::new();
        for p in &partitions {
            list.add_partition(&topic, *p);
        }
        let committed = consumer.committed_offsets(list, timeout).ok()?;
        let mut lag = 0;
        for p in partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, p, timeout).ok()?;
            let done = committed
                .find_partition(&topic, p)
                .and_then(|e| e.offset().to_raw())
                .filter(|o| *o >= 0)
                .unwrap_or(low);
            lag += (high - done).max(0);
        }
        Some(lag)
    })
    .await
    .ok()
    .flatten()
}

async fn service_states(http: &reqwest::Client, t: &Targets) -> Vec<ServiceState> {
    let probe = |name: &'static str, base: &str| {
        let url = format!("{base}/healthz");
        async move {
            ServiceState {
                name: name.into(),
                up: http
                    .get(url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
            }
        }
    };
    let (o, p) = tokio::join!(
        probe("order-service", &t.order_url),
        probe("payment-service", &t.payment_url)
    );
    vec![o, p]
}

async fn kafka_state(t: &Targets) -> (Vec<BrokerState>, Option<Partitions>) {
    let timeout = Duration::from_millis(1500);
    let (cluster, topic) = tokio::join!(
        kafka_config::describe_cluster(&t.kafka, timeout),
        kafka_config::describe_topic(&t.kafka, &t.order_topic, timeout),
    );
    let listed = cluster.map(|c| c.broker_ids).unwrap_or_default();
    let mut brokers = Vec::new();
    for (node, address) in &t.brokers {
        let port_open = tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(address.as_str()),
        )
        .await
        .is_ok_and(|c| c.is_ok());
        brokers.push(BrokerState {
            node: *node,
            address: address.clone(),
            port_open,
            in_metadata: listed.contains(node),
        });
    }
    let partitions = topic.ok().map(|v| Partitions {
        total: v.partitions.len(),
        under_replicated: v
            .partitions
            .iter()
            .filter(|p| p.isr.len() < p.replicas.len())
            .count(),
        under_min_isr: v.partitions.iter().filter(|p| p.isr.len() < 2).count(),
        leaderless: v.partitions.iter().filter(|p| p.leader < 0).count(),
        leader_of_0: v
            .partitions
            .iter()
            .find(|p| p.id == 0)
            .map(|p| p.leader)
            .filter(|l| *l >= 0),
    });
    (brokers, partitions)
}

#[cfg(test)]
mod tests {
    use super::Accumulated;

    #[test]
    fn counts_survive_a_restart_of_payment_service() {
        let mut acc = Accumulated::default();
        assert_eq!(acc.update(Some([5, 1, 0, 0])), [5, 1, 0, 0]);
        assert_eq!(acc.update(Some([9, 3, 0, 1])), [9, 3, 0, 1]);
        // Down: the last counts stay on the page.
        assert_eq!(acc.update(None), [9, 3, 0, 1]);
        // A new process starts at 0: added to what the old one counted.
        assert_eq!(acc.update(Some([2, 0, 2, 0])), [11, 3, 2, 1]);
        assert_eq!(acc.update(Some([4, 1, 2, 0])), [13, 4, 2, 1]);
    }
}
