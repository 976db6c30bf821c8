//! `GET /metrics` after a small flow (docs/en/07-tracing-and-metrics.md): every series
//! of the metric-name contract is there, on both services, and the ones the flow must
//! move have moved, by exactly as much as the flow says.
//!
//! The flow: four orders (one declined) settle; then, to move every duplicate layer
//! and the dead-letter count, copies are published by hand:
//! - an `OrderCreated` copy (same event id): payment-service's Redis fast path;
//! - an `OrderCreated` under a new event id: payment-service's `UNIQUE(order_id)`;
//! - an outcome copy (same event id): order-service's inbox;
//! - an outcome under a new event id: order-service's state machine (the order key);
//! - an unreadable `OrderCreated`: dead-lettered by payment-service.

use std::time::Duration;

use end_to_end::{first_record, place_order, publish, republish, settled_status, start_both};
use rdkafka::message::{Header, OwnedHeaders};
use test_support::eventually_with;

/// The value of the series `name{labels...}` in a Prometheus text exposition: the
/// first sample line with that metric name and all these label pairs.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| {
            let series = line.rsplit_once(' ').map_or(*line, |(s, _)| s);
            let metric = series.split('{').next().unwrap_or_default();
            metric == name
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|line| line.rsplit_once(' '))
        .and_then(|(_, value)| value.parse().ok())
}

async fn scrape(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text")
}

/// A series (metric name, some of its labels) and what it must show.
type Check<'a> = (&'a str, Vec<(&'a str, &'a str)>, Want);

/// What a check expects of a series.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Present, any value (it may not have moved in this flow: no retries happened).
    Exists,
    Exactly(f64),
    AtLeast(f64),
}

/// Scrapes `base` until every check holds (gauges are sampled every few seconds),
/// then returns the text; on timeout, panics naming the checks that failed.
async fn until_all_hold(
    http: &reqwest::Client,
    service: &str,
    base: &str,
    checks: &[Check<'_>],
) -> String {
    eventually_with(
        &format!("{service} /metrics shows the flow"),
        Duration::from_secs(40),
        Duration::from_millis(500),
        || async {
            let text = scrape(http, base).await;
            let failed: Vec<String> = checks
                .iter()
                .filter_map(|(name, labels, want)| {
                    let got = sample(&text, name, labels);
                    let ok = match (want, got) {
                        (_, None) => false,
                        (Want::Exists, Some(_)) => true,
                        (Want::Exactly(w), Some(g)) => (g - w).abs() < 1e-9,
                        (Want::AtLeast(w), Some(g)) => g >= *w,
                    };
                    (!ok).then(|| format!("{name}{labels:?}: want {want:?}, got {got:?}"))
                })
                .collect();
            if failed.is_empty() {
                Ok(text)
            } else {
                Err(failed.join("\n"))
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_show_the_flow_and_every_duplicate_layer() {
    let app = start_both(&[]).await;
    let http = reqwest::Client::new();

    let mut orders = Vec::new();
    for amount in [1999, 2999, 1013, 4999] {
        orders.push(place_order(&http, &app, amount, &[]).await);
    }
    for order in &orders {
        settled_status(&http, &app, order).await;
    }
    let first = &orders[0];
    let created = first_record(&app.order_events_topic, first).await;
    let outcome = first_record(&app.payment_events_topic, first).await;
    let fresh_id = || uuid::Uuid::now_v7().to_string();
    republish(&created, None).await;
    republish(&created, Some(&fresh_id())).await;
    republish(&outcome, None).await;
    republish(&outcome, Some(&fresh_id())).await;
    let poison_id = fresh_id();
    publish(
        &app.order_events_topic,
        Some(b"poison"),
        Some(b"not json"),
        OwnedHeaders::new()
            .insert(Header {
                key: "event-id",
                value: Some(poison_id.as_str()),
            })
            .insert(Header {
                key: "event-type",
                value: Some("OrderCreated"),
            }),
    )
    .await;

    let (ot, pt) = (
        app.order_events_topic.as_str(),
        app.payment_events_topic.as_str(),
    );
    let post = vec![("method", "POST"), ("route", "/orders"), ("status", "201")];
    let get_one = vec![
        ("method", "GET"),
        ("route", "/orders/{id}"),
        ("status", "200"),
    ];
    let none = Vec::new;
    let by_topic = |t| vec![("topic", t)];
    let layer = |t, l| vec![("topic", t), ("layer", l)];
    let state = |s| vec![("state", s)];
    // Both services run the outbox and its relay: four OrderCreated out of one, four
    // outcomes out of the other (`relay_published_total`: the gauge counts unsent rows
    // only, see shared/outbox/src/gauges.rs).
    let outbox_checks = || {
        vec![
            ("outbox_rows", state("PENDING"), Want::Exactly(0.0)),
            ("outbox_rows", state("SENDING"), Want::Exactly(0.0)),
            ("outbox_rows", state("FAILED"), Want::Exactly(0.0)),
            (
                "outbox_oldest_unsent_age_seconds",
                none(),
                Want::Exactly(0.0),
            ),
            ("relay_published_total", none(), Want::Exactly(4.0)),
            (
                "relay_publish_duration_seconds_count",
                none(),
                Want::Exactly(4.0),
            ),
            ("relay_publish_retries_total", none(), Want::Exists),
            ("relay_publish_failures_total", none(), Want::Exists),
            ("producer_queue_messages", none(), Want::Exists),
        ]
    };
    // What each consumer loop must have counted on its topic: messages in, applied,
    // suppressed per layer, dead-lettered.
    let consumer_checks =
        |t, consumed: f64, applied: f64, [redis, inbox, key]: [f64; 3], dlq: f64| {
            vec![
                (
                    "consumer_messages_consumed_total",
                    by_topic(t),
                    Want::Exactly(consumed),
                ),
                (
                    "consumer_messages_applied_total",
                    by_topic(t),
                    Want::Exactly(applied),
                ),
                (
                    "consumer_duplicates_suppressed_total",
                    layer(t, "redis"),
                    Want::Exactly(redis),
                ),
                (
                    "consumer_duplicates_suppressed_total",
                    layer(t, "inbox"),
                    Want::Exactly(inbox),
                ),
                (
                    "consumer_duplicates_suppressed_total",
                    layer(t, "business_key"),
                    Want::Exactly(key),
                ),
                (
                    "consumer_dead_lettered_total",
                    by_topic(t),
                    Want::Exactly(dlq),
                ),
                ("consumer_retries_total", by_topic(t), Want::Exists),
                (
                    "consumer_processing_duration_seconds_count",
                    by_topic(t),
                    Want::Exactly(consumed),
                ),
                ("consumer_lag_messages", by_topic(t), Want::Exists),
            ]
        };

    let mut order_checks = outbox_checks();
    order_checks.extend([
        ("http_requests_total", post.clone(), Want::Exactly(4.0)),
        (
            "http_request_duration_seconds_count",
            post.clone(),
            Want::Exactly(4.0),
        ),
        ("http_requests_total", get_one, Want::AtLeast(4.0)),
    ]);
    // Outcomes: four, one copy (inbox), one under a new id (the order's state).
    order_checks.extend(consumer_checks(pt, 6.0, 4.0, [0.0, 1.0, 1.0], 0.0));
    let order_text = until_all_hold(&http, "order-service", &app.orders_url, &order_checks).await;

    let mut payment_checks = outbox_checks();
    // Orders: four, one copy (Redis), one under a new id (UNIQUE(order_id)), one poison.
    payment_checks.extend(consumer_checks(ot, 7.0, 4.0, [1.0, 0.0, 1.0], 1.0));
    payment_checks.extend([
        ("order_to_payment_seconds_count", none(), Want::Exactly(4.0)),
        ("order_to_payment_seconds_sum", none(), Want::AtLeast(0.001)),
        // The scrapes above count themselves.
        (
            "http_requests_total",
            vec![("route", "/metrics")],
            Want::AtLeast(1.0),
        ),
    ]);
    let payment_text =
        until_all_hold(&http, "payment-service", &app.payments_url, &payment_checks).await;

    // Histograms, not summaries: Prometheus can aggregate buckets across instances.
    for (text, name) in [
        (&order_text, "http_request_duration_seconds_bucket"),
        (&payment_text, "order_to_payment_seconds_bucket"),
        (&payment_text, "consumer_processing_duration_seconds_bucket"),
    ] {
        assert!(
            sample(text, name, &[("le", "+Inf")]).is_some(),
            "{name} missing:\n{text}"
        );
    }
    // A route label is the matched route, never the raw path of one order.
    assert!(!order_text.contains(&format!("route=\"/orders/{first}\"")));

    // The names the alert rules and dashboards may use for the services
    // (infra/prometheus/exported-metrics.txt, checked against the rules and dashboards by
    // scripts/check-monitoring.sh) are names these services really export.
    let listed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/prometheus/exported-metrics.txt"
    ))
    .expect("exported-metrics.txt");
    let exported = |name: &str| {
        [&order_text, &payment_text].iter().any(|text| {
            text.lines().any(|line| {
                let series = line.split(['{', ' ']).next().unwrap_or_default();
                series == name
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| series == format!("{name}{suffix}"))
            })
        })
    };
    // The lines after the `[services]` header, up to the next section.
    let missing: Vec<&str> = listed
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "[services]")
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        // `up` is Prometheus' own series for a scrape target, not the service's.
        .filter(|name| *name != "up" && !exported(name))
        .collect();
    assert!(
        missing.is_empty(),
        "listed in exported-metrics.txt but not exported by the services: {missing:?}"
    );
    eprintln!("payment-service /metrics after the flow:\n{payment_text}");
    app.stop().await;
}
