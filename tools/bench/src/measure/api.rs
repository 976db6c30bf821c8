//! Order API orders/s against its database ceiling.
//!
//! The API: order-service (release), `N` HTTP clients in a closed loop. Measured twice:
//! with its relay off (the request path alone: what the ratio compares) and with the
//! relay on (as deployed: the relay and Kafka take their share of the two cores).
//!
//! The ceiling: pgbench with the same two inserts in one transaction (order row + outbox
//! row with an `OrderCreated` payload of the same size), same clients, same schema — the
//! very database the API wrote to, with its indexes and its notify trigger. A second
//! script adds the two reads `create_order` does inside its transaction (the answer is
//! read back: order + timeline), to show what those round trips cost.

use std::time::Duration;

use serde::Serialize;

use crate::events::BenchEvent;
use crate::http_load::{self, ClosedLoop};
use crate::pgbench::{self, PgbenchResult};
use crate::services::{RssSampler, ServiceProcess, ServiceSpec};
use crate::stats::Percentiles;
use crate::{Settings, progress, stack};

#[derive(Debug, Clone, Serialize)]
pub struct ApiRun {
    pub relay_enabled: bool,
    pub clients: usize,
    pub orders_per_s: f64,
    pub failed: u64,
    pub latency_ms: Percentiles,
    pub rss_idle_kib: u64,
    pub rss_load_kib: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiResult {
    pub relay_off: ApiRun,
    pub relay_on: ApiRun,
    /// The two inserts in one transaction: the ceiling.
    pub pgbench_two_inserts: PgbenchResult,
    /// The same plus the two reads of the answer: what the API's transaction really does.
    pub pgbench_with_read_back: PgbenchResult,
    /// `relay_off.orders_per_s / pgbench_two_inserts.tps` (target ≥ 0.70).
    pub ratio: f64,
}

/// The pgbench script: order + outbox row, one transaction. Ids are derived from a
/// random number (`md5(...)::uuid`; the service makes UUIDv7 in Rust), so no extra round
/// trip is spent on them and the read-back can find the order it wrote.
pub fn two_inserts_script(payload: &str, with_read_back: bool) -> String {
    let read_back = if with_read_back {
        "SELECT id, customer_id, amount_minor, currency, status, created_at, updated_at, \
         payment_event_id, payment_reason FROM orders WHERE id = md5('o' || :order_no)::uuid;\n\
         SELECT id, topic, event_type, state, attempts, kafka_partition, kafka_offset, \
         created_at, sent_at, last_error FROM outbox WHERE aggregate_id = 'order-' || :order_no ORDER BY seq;\n"
    } else {
        ""
    };
    format!(
        "\\set order_no random(1, 1000000000000000000)\n\
         \\set amount random(100, 999999)\n\
         BEGIN;\n\
         INSERT INTO orders (id, customer_id, amount_minor, currency, created_at, updated_at) \
         VALUES (md5('o' || :order_no)::uuid, 'bench-customer', :amount, 'EUR', now(), now());\n\
         INSERT INTO outbox (id, aggregate_id, topic, message_key, event_type, payload, headers) \
         VALUES (gen_random_uuid(), 'order-' || :order_no, 'order-events', 'order-' || :order_no, \
         'OrderCreated', '{payload}'::jsonb, '{{\"schema-version\": \"1\"}}'::jsonb);\n\
         {read_back}\
         END;\n"
    )
}

pub async fn measure(settings: &Settings) -> anyhow::Result<ApiResult> {
    let window = Duration::from_secs(settings.seconds);
    let warmup = Duration::from_secs(3);
    let clients = settings.concurrency;

    progress("api: order-service, relay off, closed loop");
    let db_off = stack::fresh_database(settings, &settings.name("api_relay_off")).await?;
    let relay_off = api_run(settings, &db_off, false, clients, warmup, window).await?;
    progress(&format!(
        "api: relay off: {:.0} orders/s",
        relay_off.orders_per_s
    ));

    progress("api: order-service, relay on, closed loop");
    let db_on = stack::fresh_database(settings, &settings.name("api_relay_on")).await?;
    let relay_on = api_run(settings, &db_on, true, clients, warmup, window).await?;
    progress(&format!(
        "api: relay on: {:.0} orders/s",
        relay_on.orders_per_s
    ));

    // Same database as the relay-off run: same schema, indexes, trigger, and table size.
    let payload = serde_json::to_string(&BenchEvent::new(0).payload)?;
    let dir = settings.out_dir.join("pgbench");
    std::fs::create_dir_all(&dir)?;
    progress("api: pgbench, the two inserts");
    let pgbench_two_inserts = pgbench::run(
        &db_off,
        &two_inserts_script(&payload, false),
        &dir.join("api-two-inserts.sql"),
        clients,
        settings.seconds,
    )
    .await?;
    progress("api: pgbench, the two inserts + the read-back");
    let pgbench_with_read_back = pgbench::run(
        &db_off,
        &two_inserts_script(&payload, true),
        &dir.join("api-with-read-back.sql"),
        clients,
        settings.seconds,
    )
    .await?;
    let ratio = relay_off.orders_per_s / pgbench_two_inserts.tps.max(f64::EPSILON);
    Ok(ApiResult {
        relay_off,
        relay_on,
        pgbench_two_inserts,
        pgbench_with_read_back,
        ratio,
    })
}

async fn api_run(
    settings: &Settings,
    database_url: &str,
    relay_enabled: bool,
    clients: usize,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<ApiRun> {
    let label = if relay_enabled {
        "api_relay_on"
    } else {
        "api_relay_off"
    };
    let topic = settings.name(&format!("{label}_order_events"));
    let service = ServiceProcess::start(
        settings,
        ServiceSpec {
            binary: "order-service",
            label: format!("{label}-order-service"),
            port: settings.port_base,
            database_url: database_url.to_owned(),
            order_events_topic: topic.clone(),
            payment_events_topic: format!("{topic}_outcomes"),
            consumer_group: settings.name(label),
            extra_env: vec![("RELAY_ENABLED", relay_enabled.to_string())],
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle_kib = service.rss_kib().unwrap_or(0);
    let sampler = RssSampler::start(vec![service.pid()]);
    let client = http_load::client();
    let run: ClosedLoop =
        http_load::closed_loop(&client, &service.base_url(), clients, warmup, window).await;
    let rss_load_kib = sampler.finish().await.first().copied().unwrap_or(0);
    service.stop().await?;
    Ok(ApiRun {
        relay_enabled,
        clients,
        orders_per_s: run.per_second(),
        failed: run.failed,
        latency_ms: Percentiles::of(&run.latencies_ms),
        rss_idle_kib,
        rss_load_kib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_is_one_transaction_of_two_inserts() {
        let s = two_inserts_script("{\"a\":1}", false);
        assert_eq!(s.matches("INSERT INTO").count(), 2);
        assert_eq!(s.matches("SELECT").count(), 0);
        let begin = s.find("BEGIN;").expect("BEGIN");
        let end = s.find("END;").expect("END");
        assert!(
            begin < s.find("INSERT INTO orders").expect("orders")
                && s.find("INSERT INTO outbox").expect("outbox") < end
        );
        assert!(s.contains("'{\"a\":1}'::jsonb"));
        let with_reads = two_inserts_script("{}", true);
        assert_eq!(with_reads.matches("SELECT").count(), 2);
        assert!(with_reads.find("SELECT").expect("select") < with_reads.find("END;").expect("end"));
    }
}
