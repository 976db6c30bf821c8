//! One trace across the whole chain (docs/en/07-tracing-and-metrics.md): both services
//! run in this process with an in-memory span exporter, and the spans of an order must
//! form one parent/child chain with one trace id:
//!
//! ```text
//! POST /orders                      order-service, SERVER (child of the client's span if it sent one)
//! └ send <order-events>             relay, PRODUCER: its parent crossed the database in the outbox row
//!   └ process <order-events>        payment-service, CONSUMER: its parent crossed Kafka in the headers
//!     └ send <payment-events>       payment-service's relay: the outcome row was written in `process`
//!       └ process <payment-events>  order-service: PENDING_PAYMENT → PAID
//! ```
//!
//! A copy of the `OrderCreated` event published again shows up in the same trace as a
//! `process` span marked `duplicate=true, suppressed_by=redis`.
//!
//! The subscriber is global to the process, so this test has a binary of its own.

use std::sync::OnceLock;
use std::time::Duration;

use end_to_end::{Running, first_record, place_order, republish, settled_status, start_both};
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData, SpanExporter};
use test_support::eventually_with;

/// The exporter every span of this process goes to, installed once.
fn spans() -> &'static InMemorySpanExporter {
    static INSTALLED: OnceLock<(InMemorySpanExporter, telemetry::TelemetryGuard)> = OnceLock::new();
    let (exporter, _guard) = INSTALLED.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let guard = telemetry::init_with_exporter("end-to-end", exporter.clone())
            .expect("the only subscriber of this test binary");
        (exporter, guard)
    });
    exporter
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// The five spans of one order's trip, each the parent of the next.
#[derive(Debug)]
struct Chain {
    http: SpanData,
    send_order: SpanData,
    process_order: SpanData,
    send_outcome: SpanData,
    process_outcome: SpanData,
}

impl Chain {
    fn trace_id(&self) -> TraceId {
        self.send_order.span_context.trace_id()
    }
}

/// Finds the chain of `order_id` among the finished spans, or says what is missing.
fn chain(all: &[SpanData], app: &Running, order_id: &str) -> Result<Chain, String> {
    let named = |name: &str, kind: SpanKind, parent: Option<&SpanData>| {
        all.iter()
            .find(|s| {
                s.name == name
                    && s.span_kind == kind
                    && parent.is_none_or(|p| {
                        s.span_context.trace_id() == p.span_context.trace_id()
                            && s.parent_span_id == p.span_context.span_id()
                    })
                    && attribute(s, "duplicate").is_none()
            })
            .cloned()
            .ok_or_else(|| {
                format!(
                    "no {kind:?} span {name:?} under {:?}",
                    parent.map(|p| &p.name)
                )
            })
    };
    let send_order = all
        .iter()
        .find(|s| {
            s.name == format!("send {}", app.order_events_topic)
                && attribute(s, "messaging.kafka.message.key").as_deref() == Some(order_id)
        })
        .cloned()
        .ok_or("no send span of the OrderCreated event yet")?;
    let http = all
        .iter()
        .find(|s| {
            s.span_context.span_id() == send_order.parent_span_id
                && s.span_context.trace_id() == send_order.span_context.trace_id()
        })
        .cloned()
        .ok_or("the send span's parent (the HTTP request) is not among the spans")?;
    let process_order = named(
        &format!("process {}", app.order_events_topic),
        SpanKind::Consumer,
        Some(&send_order),
    )?;
    let send_outcome = named(
        &format!("send {}", app.payment_events_topic),
        SpanKind::Producer,
        Some(&process_order),
    )?;
    let process_outcome = named(
        &format!("process {}", app.payment_events_topic),
        SpanKind::Consumer,
        Some(&send_outcome),
    )?;
    Ok(Chain {
        http,
        send_order,
        process_order,
        send_outcome,
        process_outcome,
    })
}

async fn wait_for_chain(app: &Running, order_id: &str) -> Chain {
    eventually_with(
        &format!("the spans of order {order_id} form the chain"),
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let all = spans().get_finished_spans().map_err(|e| e.to_string())?;
            chain(&all, app, order_id)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_trace_runs_from_post_orders_to_the_paid_update() {
    spans();
    let app = start_both(&[]).await;
    let http = reqwest::Client::new();

    // Order A comes from a client that is itself traced: the chain continues its trace.
    let client_trace =
        TraceId::from_hex(&uuid::Uuid::new_v4().simple().to_string()).expect("32 hex digits");
    let client_span = SpanId::from_hex("00f067aa0ba902b7").expect("16 hex digits");
    let traceparent = format!("00-{client_trace}-{client_span}-01");
    let order_a = place_order(&http, &app, 1999, &[("traceparent", &traceparent)]).await;
    // Order B comes without one: its HTTP span is the root of a new trace.
    let order_b = place_order(&http, &app, 2499, &[]).await;
    assert_eq!(settled_status(&http, &app, &order_a).await, "PAID");
    assert_eq!(settled_status(&http, &app, &order_b).await, "PAID");

    let a = wait_for_chain(&app, &order_a).await;
    let b = wait_for_chain(&app, &order_b).await;
    for (order, c) in [(&order_a, &a), (&order_b, &b)] {
        let trace = c.trace_id();
        for span in [
            &c.http,
            &c.process_order,
            &c.send_outcome,
            &c.process_outcome,
        ] {
            assert_eq!(
                span.span_context.trace_id(),
                trace,
                "order {order}: {} is in another trace",
                span.name
            );
        }
        assert_eq!(c.http.name, "POST /orders");
        assert_eq!(c.http.span_kind, SpanKind::Server);
        assert_eq!(
            attribute(&c.http, "http.response.status_code").as_deref(),
            Some("201")
        );
        assert_eq!(c.send_order.span_kind, SpanKind::Producer);
        assert_eq!(
            attribute(&c.send_order, "messaging.system").as_deref(),
            Some("kafka")
        );
        assert!(
            attribute(&c.send_order, "messaging.kafka.offset").is_some(),
            "the broker's offset is on the send span: {:?}",
            c.send_order.attributes
        );
        for consumer in [&c.process_order, &c.process_outcome] {
            assert_eq!(attribute(consumer, "outcome").as_deref(), Some("applied"));
        }
    }
    assert_eq!(
        a.trace_id(),
        client_trace,
        "order A continues the client's trace"
    );
    assert_eq!(a.http.parent_span_id, client_span);
    assert_ne!(b.trace_id(), a.trace_id());
    assert_eq!(
        b.http.parent_span_id,
        SpanId::INVALID,
        "without a traceparent the request starts the trace"
    );

    // A copy of order A's OrderCreated, published again as a relay retry would (same
    // headers, so the same traceparent): processed in the same trace, marked duplicate.
    republish(&first_record(&app.order_events_topic, &order_a).await, None).await;
    let duplicate = eventually_with(
        "the copy's process span",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let all = spans().get_finished_spans().map_err(|e| e.to_string())?;
            all.into_iter()
                .find(|s| {
                    s.parent_span_id == a.send_order.span_context.span_id()
                        && attribute(s, "duplicate").as_deref() == Some("true")
                })
                .ok_or_else(|| "no duplicate span yet".to_owned())
        },
    )
    .await;
    assert_eq!(duplicate.span_context.trace_id(), a.trace_id());
    assert_eq!(
        duplicate.name,
        format!("process {}", app.order_events_topic)
    );
    assert_eq!(
        attribute(&duplicate, "suppressed_by").as_deref(),
        Some("redis")
    );
    assert_eq!(
        attribute(&duplicate, "outcome").as_deref(),
        Some("duplicate")
    );

    // The same spans through the OTLP/JSON file and the terminal viewer.
    let waterfall = view_in_terminal(&order_a).await;
    eprintln!("{waterfall}");
    // Two header lines, then one line per span.
    assert_eq!(
        waterfall.lines().count() - 2,
        6,
        "five chain spans and the duplicate:\n{waterfall}"
    );
    let order_of = |needle: &str| {
        waterfall
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} missing:\n{waterfall}"))
    };
    let indent_of = |needle: &str| {
        // In characters: the timeline bars are multi-byte.
        let line = waterfall.lines().nth(order_of(needle)).unwrap_or_default();
        line.find(needle).map_or(0, |at| line[..at].chars().count())
    };
    let steps = [
        "POST /orders".to_owned(),
        format!("send {}", app.order_events_topic),
        format!("process {}  partition", app.order_events_topic),
        format!("send {}", app.payment_events_topic),
        format!("process {}", app.payment_events_topic),
    ];
    for pair in steps.windows(2) {
        assert!(
            order_of(&pair[0]) < order_of(&pair[1]) && indent_of(&pair[0]) < indent_of(&pair[1]),
            "{:?} is drawn under {:?}:\n{waterfall}",
            pair[1],
            pair[0]
        );
    }
    assert!(
        waterfall.contains("duplicate=true  suppressed_by=redis"),
        "{waterfall}"
    );

    app.stop().await;
}

/// Writes every span so far to an OTLP/JSON file, as `OTEL_TRACES_FILE` would, and
/// renders the order's trace with `trace-view`.
async fn view_in_terminal(order_id: &str) -> String {
    let path = std::env::temp_dir().join(format!("{}.jsonl", test_support::unique_name("spans")));
    let mut file = telemetry::JsonFileExporter::open(&path).expect("span file");
    file.set_resource(&Resource::builder().with_service_name("end-to-end").build());
    let all = spans().get_finished_spans().expect("spans");
    file.export(all).await.expect("written");
    let (rows, skipped) = trace_view::read_spans(&path).expect("read back");
    assert_eq!(skipped, 0);
    let traces = trace_view::traces_of_order(&rows, order_id);
    assert_eq!(traces.len(), 1, "one trace holds the order: {traces:?}");
    let _ = std::fs::remove_file(&path);
    trace_view::render_trace(&rows, &traces[0])
}

/// `PUBLISH_MODE=direct` sends during the request, without the outbox: its send span
/// is injected into the headers the same way, so the chain is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_direct_publish_mode_carries_the_trace_too() {
    spans();
    let send_log = std::env::temp_dir()
        .join(test_support::unique_name("send-log"))
        .join("send.log");
    let send_log = send_log.to_string_lossy().into_owned();
    let app = start_both(&[("PUBLISH_MODE", "direct"), ("SEND_LOG_PATH", &send_log)]).await;
    let http = reqwest::Client::new();
    let order = place_order(&http, &app, 1999, &[]).await;
    assert_eq!(settled_status(&http, &app, &order).await, "PAID");
    let chain = wait_for_chain(&app, &order).await;
    assert_eq!(chain.http.name, "POST /orders");
    // Sent inside the request: the send span ends before the request does.
    assert!(chain.send_order.end_time <= chain.http.end_time);
    assert_eq!(
        attribute(&chain.process_outcome, "outcome").as_deref(),
        Some("applied")
    );
    app.stop().await;
}
