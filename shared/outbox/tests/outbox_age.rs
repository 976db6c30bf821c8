//! The produce stage's loss alarm, `outbox_oldest_unsent_age_seconds`, through a broker
//! outage: it rises while the relay cannot reach Kafka and falls to 0 once the events
//! are out. (That the alert fires on it is the rules' promtool test,
//! `infra/prometheus/alerts.test.yml`, run by `make monitoring-check`.)

use std::time::Duration;

use lifecycle::Shutdown;
use outbox::{ClaimStrategy, OutboxGauges, Relay};
use sqlx::PgPool;
use test_support::{create_unique_topic, eventually, unused_port};

mod common;

/// The gauge's value as the service's `/metrics` would show it.
fn oldest_unsent_age(metrics: &telemetry::Metrics) -> f64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("outbox_oldest_unsent_age_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the gauge is rendered")
}

async fn sample(gauges: &OutboxGauges, pool: &PgPool, metrics: &telemetry::Metrics) -> f64 {
    gauges.sample_once(pool).await.expect("sample");
    oldest_unsent_age(metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_unsent_age_rises_while_kafka_is_unreachable_and_falls_after() {
    let (_db, pool) = common::migrated_db().await;
    let topic = create_unique_topic("outbox-age", 1, 3).await;
    let metrics = telemetry::Metrics::new();
    let gauges = OutboxGauges::new(&metrics);
    for k in 0..3 {
        common::enqueue(
            &pool,
            &topic,
            &format!("k{k}"),
            serde_json::json!({ "n": k }),
        )
        .await;
    }

    // "Kafka is down": the relay's producer points at a port nobody listens on.
    let dead = format!("127.0.0.1:{}", unused_port());
    let mut settings = kafka_config::ProducerSettings::reliable(&dead);
    // Its sends give up soon, so stopping it (it waits for them) is quick.
    settings.delivery_timeout_ms = 2_000;
    let producer = settings.client_config().create().expect("producer");
    let config = common::relay_config(
        "cut-off",
        ClaimStrategy::SkipLocked,
        100,
        Duration::from_secs(60),
    );
    let stop = Shutdown::default();
    let cut_off = tokio::spawn(Relay::new(pool.clone(), producer, config).run(stop.clone()));
    let first = sample(&gauges, &pool, &metrics).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = sample(&gauges, &pool, &metrics).await;
    stop.trigger();
    cut_off.await.expect("relay task");
    assert!(
        later >= first + 2.0,
        "the age grows while nothing reaches Kafka: {first} s, then {later} s"
    );

    // Kafka is back: a relay that reaches it sends the rows (after the cut-off relay's
    // lease, released at its stop or expired), and the alarm falls back to 0.
    let stop = Shutdown::default();
    let relay = common::relay(
        &pool,
        "back",
        ClaimStrategy::SkipLocked,
        100,
        Duration::from_secs(60),
    );
    let back = tokio::spawn(relay.run(stop.clone()));
    let settled = eventually("the oldest unsent age back to 0", || async {
        let age = sample(&gauges, &pool, &metrics).await;
        if age == 0.0 { Ok(age) } else { Err(age) }
    })
    .await;
    stop.trigger();
    back.await.expect("relay task");
    eprintln!(
        "oldest unsent age: {first:.1} s, {later:.1} s with Kafka unreachable, {settled} s after"
    );
}

/// The sample must not read the week of `SENT` rows housekeeping keeps: with 200,000 of
/// them and a handful unsent, both of its queries read only the unsent rows' index.
#[tokio::test]
async fn the_gauges_read_only_unsent_rows() {
    let (_db, pool) = common::migrated_db().await;
    sqlx::query(
        "INSERT INTO outbox (id, aggregate_id, topic, message_key, event_type, payload, state, sent_at)
         SELECT gen_random_uuid(), 'o' || n, 't', 'k' || n, 'E', '{}', 'SENT', now()
           FROM generate_series(1, 200000) AS n",
    )
    .execute(&pool)
    .await
    .expect("a week of SENT rows");
    for k in 0..5 {
        common::enqueue(&pool, "t", &format!("u{k}"), serde_json::json!({})).await;
    }
    sqlx::query("ANALYZE outbox")
        .execute(&pool)
        .await
        .expect("analyze");
    let age_sql = "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 \
                   FROM outbox WHERE state <> 'SENT'";
    for sql in [outbox::COUNT_UNSENT_SQL, age_sql] {
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
            .fetch_all(&pool)
            .await
            .expect("explain");
        let plan = plan.join("\n");
        assert!(
            !plan.contains("Seq Scan") && plan.contains("outbox_unsent_idx"),
            "{sql}\n{plan}"
        );
    }
    let metrics = telemetry::Metrics::new();
    OutboxGauges::new(&metrics)
        .sample_once(&pool)
        .await
        .expect("sample");
    let rendered = metrics.render();
    assert!(
        rendered.contains("outbox_rows{state=\"PENDING\"} 5"),
        "{rendered}"
    );
    assert!(!rendered.contains("state=\"SENT\""), "{rendered}");
}
