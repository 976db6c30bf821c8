//! One order, followed: its timeline as order-service tells it (`GET /orders/<id>`: the
//! order row and its outbox rows, partition and offset), its delivery (the inbox row) and
//! payment, and its trace — the spans `make trace` shows, read by `tools/trace-view`.

use serde::Serialize;
use uuid::Uuid;

use crate::stack::Targets;

#[derive(Debug, Serialize)]
pub struct Followed {
    pub order: Option<serde_json::Value>,
    pub order_error: Option<String>,
    pub deliveries: Vec<Delivery>,
    pub payments: Vec<Payment>,
    pub spans: Vec<Span>,
    /// The waterfall exactly as `make trace ORDER=<id>` prints it.
    pub trace_text: String,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Delivery {
    pub message_id: Uuid,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub duplicate_deliveries: i32,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Payment {
    pub id: Uuid,
    pub status: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize)]
pub struct Span {
    pub trace_id: String,
    pub depth: usize,
    pub service: String,
    pub name: String,
    pub start_ms: f64,
    pub duration_ms: f64,
    pub error: bool,
    pub attributes: Vec<(String, String)>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Recent {
    pub id: Uuid,
    pub status: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

pub async fn recent(t: &Targets) -> Vec<Recent> {
    sqlx::query_as("SELECT id, status, created_at FROM orders ORDER BY created_at DESC LIMIT 12")
        .fetch_all(&t.orders_db)
        .await
        .unwrap_or_default()
}

pub async fn follow(t: &Targets, id: Uuid) -> Followed {
    let (order, order_error) = match reqwest::get(format!("{}/orders/{id}", t.order_url)).await {
        Ok(r) if r.status().is_success() => (r.json().await.ok(), None),
        Ok(r) => (None, Some(format!("order-service answered {}", r.status()))),
        Err(e) => (None, Some(format!("order-service: {e}"))),
    };
    // The order's OrderCreated event ids (its outbox rows), then their inbox rows.
    let events: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM outbox WHERE aggregate_id = $1 AND topic = $2")
            .bind(id.to_string())
            .bind(&t.order_topic)
            .fetch_all(&t.orders_db)
            .await
            .unwrap_or_default();
    let deliveries = sqlx::query_as(
        "SELECT message_id, kafka_partition, kafka_offset, received_at, duplicate_deliveries
         FROM inbox WHERE message_id = ANY($1) AND consumer_group = $2",
    )
    .bind(&events)
    .bind(&t.payment_group)
    .fetch_all(&t.payments_db)
    .await
    .unwrap_or_default();
    let payments = sqlx::query_as(
        "SELECT id, status, created_at FROM payments WHERE order_id = $1
         UNION ALL SELECT id, status, created_at FROM payments_without_business_key WHERE order_id = $1",
    )
    .bind(id)
    .fetch_all(&t.payments_db)
    .await
    .unwrap_or_default();
    let (spans, trace_text) = trace(t, &id.to_string());
    Followed {
        order,
        order_error,
        deliveries,
        payments,
        spans,
        trace_text,
    }
}

fn trace(t: &Targets, order_id: &str) -> (Vec<Span>, String) {
    let Ok((rows, _skipped)) = trace_view::read_spans(&t.traces_file) else {
        return (
            Vec::new(),
            format!("no span file at {} yet", t.traces_file.display()),
        );
    };
    let traces = trace_view::traces_of_order(&rows, order_id);
    if traces.is_empty() {
        return (
            Vec::new(),
            "no span of this order yet (spans are written in batches every few seconds)".into(),
        );
    }
    let mut text = String::new();
    let mut spans = Vec::new();
    let start = rows
        .iter()
        .filter(|r| traces.contains(&r.trace_id))
        .map(|r| r.start_unix_nano)
        .min()
        .unwrap_or(0);
    for trace_id in &traces {
        text.push_str(&trace_view::render_trace(&rows, trace_id));
        text.push('\n');
        let mut of_trace: Vec<&trace_view::SpanRow> =
            rows.iter().filter(|r| &r.trace_id == trace_id).collect();
        of_trace.sort_by_key(|r| r.start_unix_nano);
        for row in &of_trace {
            spans.push(Span {
                trace_id: trace_id.clone(),
                depth: depth(&of_trace, row),
                service: row.service.clone(),
                name: row.name.clone(),
                start_ms: row.start_unix_nano.saturating_sub(start) as f64 / 1e6,
                duration_ms: row.duration_ms(),
                error: row.error,
                attributes: row
                    .attributes
                    .iter()
                    .filter(|(k, _)| !k.starts_with("code.") && !k.starts_with("thread."))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            });
        }
    }
    (spans, text)
}

fn depth(spans: &[&trace_view::SpanRow], span: &trace_view::SpanRow) -> usize {
    let mut depth = 0;
    let mut parent = span.parent_span_id.as_str();
    while let Some(p) = spans.iter().find(|s| s.span_id == parent) {
        depth += 1;
        parent = p.parent_span_id.as_str();
        if depth > 32 {
            break;
        }
    }
    depth
}
