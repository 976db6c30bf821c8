//! Claim strategies side by side: `SKIP LOCKED` vs optimistic lock, with 1, 2 and 4
//! relays draining the same outbox into the real 3-node cluster.
//!
//! For each combination: a fresh database, ROWS outbox rows over KEYS keys, then the
//! relays run until every row is SENT. Prints rows/s and how many claim attempts were
//! lost to a competing relay (optimistic lock only). `make bench-claim` runs it.

// A benchmark: its stdout is the result table.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use lifecycle::Shutdown;
use outbox::{ClaimStrategy, OutboxMessage, Relay, RelayConfig};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use test_support::{TestDatabase, create_unique_topic, ensure_stack};

const ROWS: usize = 5_000;
const KEYS: usize = 1_000;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rows = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROWS);
    println!("| strategy | relays | rows | seconds | rows/s |");
    println!("|---|---|---|---|---|");
    for strategy in [ClaimStrategy::SkipLocked, ClaimStrategy::OptimisticLock] {
        for relays in [1, 2, 4] {
            let (secs, rate) = run(strategy, relays, rows).await;
            println!("| {strategy:?} | {relays} | {rows} | {secs:.2} | {rate:.0} |");
        }
    }
}

async fn run(strategy: ClaimStrategy, relays: usize, rows: usize) -> (f64, f64) {
    let db = TestDatabase::create().await;
    let pool = db.pool().await;
    outbox::MIGRATOR.run(&pool).await.expect("migrate");
    let topic = create_unique_topic("claim-bench", 6, 3).await;
    let mut tx = pool.begin().await.expect("begin");
    for i in 0..rows {
        let m = OutboxMessage::new(
            &topic,
            format!("key-{}", i % KEYS),
            "BenchEvent",
            json!({ "i": i, "pad": "x".repeat(200) }),
        );
        outbox::enqueue(&mut tx, &m).await.expect("enqueue");
    }
    tx.commit().await.expect("commit");

    let stop = Shutdown::default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for r in 0..relays {
        // Each relay gets a pool of its own, as a relay process has: one connection for
        // LISTEN, one for its passes. On the test's small shared pool the relays queued
        // for connections (and starved the progress query: PoolTimedOut with 4 relays)
        // instead of competing for rows, which is what this bench compares.
        let relay_pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&db.url)
            .await
            .expect("relay pool");
        let producer =
            kafka_config::ProducerSettings::reliable(&ensure_stack().kafka_bootstrap_servers)
                .client_config()
                .create()
                .expect("producer");
        let mut config = RelayConfig::new(format!("bench-{r}"));
        config.strategy = strategy;
        config.poll_interval = Duration::from_millis(20);
        tasks.push(tokio::spawn(
            Relay::new(relay_pool, producer, config).run(stop.clone()),
        ));
    }
    loop {
        let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE state <> 'SENT'")
            .fetch_one(&pool)
            .await
            .expect("count");
        if unsent == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    stop.trigger();
    for t in tasks {
        t.await.expect("relay");
    }
    pool.close().await;
    (secs, rows as f64 / secs)
}
