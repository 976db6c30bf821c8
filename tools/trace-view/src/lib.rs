//! Reading an OTLP/JSON span file (what the services write with `OTEL_TRACES_FILE`, or
//! what the OpenTelemetry Collector's file exporter writes) and printing one trace as an
//! indented waterfall: a trace viewer for a terminal (docs/en/07-tracing-and-metrics.md).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

/// One span, flattened: what the waterfall needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRow {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// The `service.name` of the process that wrote it.
    pub service: String,
    pub name: String,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub attributes: BTreeMap<String, String>,
    pub error: bool,
}

impl SpanRow {
    pub fn duration_ms(&self) -> f64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano) as f64 / 1e6
    }

    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// Every span in the file at `path`. One JSON document per line; a line that does not
/// parse (a batch cut short by a crash) is skipped and counted in the second value.
pub fn read_spans(path: &Path) -> std::io::Result<(Vec<SpanRow>, usize)> {
    let text = std::fs::read_to_string(path)?;
    let mut spans = Vec::new();
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<ExportTraceServiceRequest>(line) {
            Ok(request) => spans.extend(flatten(request)),
            Err(_) => skipped += 1,
        }
    }
    Ok((spans, skipped))
}

/// The spans of one OTLP export request.
pub fn flatten(request: ExportTraceServiceRequest) -> Vec<SpanRow> {
    let mut rows = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .and_then(|kv| kv.value.as_ref())
            .map_or_else(|| "?".to_owned(), text);
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                rows.push(SpanRow {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    service: service.clone(),
                    name: span.name,
                    start_unix_nano: span.start_time_unix_nano,
                    end_unix_nano: span.end_time_unix_nano,
                    attributes: attributes(&span.attributes),
                    error: span
                        .status
                        .as_ref()
                        .is_some_and(|s| s.code == StatusCode::Error as i32),
                });
            }
        }
    }
    rows
}

/// The traces an order took part in: those with a span whose attribute equals the
/// order id. The messaging spans carry it as their Kafka key (both events of an order
/// are keyed by its id); the `POST /orders` span is in the same trace as they are.
pub fn traces_of_order(spans: &[SpanRow], order_id: &str) -> Vec<String> {
    let mut found: Vec<(u64, String)> = Vec::new();
    let mut seen = HashSet::new();
    for span in spans {
        if span.attributes.values().any(|v| v == order_id) && seen.insert(&span.trace_id) {
            let start = trace_start(spans, &span.trace_id);
            found.push((start, span.trace_id.clone()));
        }
    }
    found.sort();
    found.into_iter().map(|(_, id)| id).collect()
}

/// The attributes shown beside a span, with the short label each gets.
const SHOWN: &[(&str, &str)] = &[
    ("http.response.status_code", "status"),
    ("messaging.destination.partition.id", "partition"),
    ("messaging.kafka.offset", "offset"),
    ("outcome", "outcome"),
    ("duplicate", "duplicate"),
    ("suppressed_by", "suppressed_by"),
    ("error.type", "error"),
];

/// Width of the timeline bar column.
const BAR: usize = 24;

/// One trace as an indented waterfall: per span its start (ms after the trace's first
/// span), its duration, a bar on the trace's timeline, the service, the name indented
/// under its parent, and the attributes that tell what happened.
pub fn render_trace(spans: &[SpanRow], trace_id: &str) -> String {
    let mut of_trace: Vec<&SpanRow> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
    of_trace.sort_by_key(|s| s.start_unix_nano);
    let mut out = String::new();
    let Some(first) = of_trace.first() else {
        let _ = writeln!(out, "trace {trace_id}: no spans");
        return out;
    };
    let start = first.start_unix_nano;
    let end = of_trace
        .iter()
        .map(|s| s.end_unix_nano)
        .max()
        .unwrap_or(start);
    let total = end.saturating_sub(start).max(1);
    let _ = writeln!(
        out,
        "trace {trace_id}  {} spans  {:.1} ms",
        of_trace.len(),
        total as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "{:>9} {:>9}  {:<BAR$}  {:<16} span",
        "start ms", "dur ms", "timeline", "service"
    );

    // Children under their parent, by start time. A span whose parent is not in the
    // file (the caller's span, from a `traceparent` it sent) is shown as a root.
    let ids: HashSet<&str> = of_trace.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&SpanRow>> = HashMap::new();
    let mut roots = Vec::new();
    for span in &of_trace {
        if ids.contains(span.parent_span_id.as_str()) {
            children
                .entry(span.parent_span_id.as_str())
                .or_default()
                .push(span);
        } else {
            roots.push(*span);
        }
    }
    let mut stack: Vec<(&SpanRow, usize)> = roots.into_iter().rev().map(|s| (s, 0)).collect();
    while let Some((span, depth)) = stack.pop() {
        let offset = span.start_unix_nano.saturating_sub(start);
        let _ = writeln!(
            out,
            "{:>9.1} {:>9.1}  {}  {:<16} {}{}{}",
            offset as f64 / 1e6,
            span.duration_ms(),
            bar(
                offset,
                span.end_unix_nano.saturating_sub(span.start_unix_nano),
                total
            ),
            span.service,
            if depth == 0 {
                String::new()
            } else {
                format!("{}└ ", "  ".repeat(depth - 1))
            },
            span.name,
            shown_attributes(span),
        );
        if let Some(kids) = children.get(span.span_id.as_str()) {
            stack.extend(kids.iter().rev().map(|k| (*k, depth + 1)));
        }
    }
    out
}

/// The last `n` traces in the file, one line each: when, how long, how many spans,
/// and the name of its first span.
pub fn render_recent(spans: &[SpanRow], n: usize) -> String {
    let mut traces: HashMap<&str, Vec<&SpanRow>> = HashMap::new();
    for span in spans {
        traces.entry(span.trace_id.as_str()).or_default().push(span);
    }
    let mut summary: Vec<(u64, u64, usize, &str, String)> = traces
        .into_iter()
        .map(|(id, spans)| {
            let start = spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
            let end = spans.iter().map(|s| s.end_unix_nano).max().unwrap_or(start);
            let first = spans
                .iter()
                .min_by_key(|s| s.start_unix_nano)
                .map(|s| format!("{} {}", s.service, s.name))
                .unwrap_or_default();
            (start, end, spans.len(), id, first)
        })
        .collect();
    summary.sort();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<32}  {:>5}  {:>9}  first span",
        "trace id", "spans", "dur ms"
    );
    for (start, end, count, id, first) in summary.iter().rev().take(n).rev() {
        let _ = writeln!(
            out,
            "{id:<32}  {count:>5}  {:>9.1}  {first}",
            end.saturating_sub(*start) as f64 / 1e6
        );
    }
    out
}

fn trace_start(spans: &[SpanRow], trace_id: &str) -> u64 {
    spans
        .iter()
        .filter(|s| s.trace_id == trace_id)
        .map(|s| s.start_unix_nano)
        .min()
        .unwrap_or(0)
}

fn bar(offset: u64, duration: u64, total: u64) -> String {
    let scale = |ns: u64| ((ns as f64 / total as f64) * BAR as f64).round() as usize;
    let from = scale(offset).min(BAR - 1);
    let width = scale(duration).max(1).min(BAR - from);
    format!(
        "{}{}{}",
        " ".repeat(from),
        "█".repeat(width),
        " ".repeat(BAR - from - width)
    )
}

fn shown_attributes(span: &SpanRow) -> String {
    let mut out = String::new();
    for (key, label) in SHOWN {
        if let Some(value) = span.attribute(key) {
            let _ = write!(out, "  {label}={value}");
        }
    }
    if span.error && span.attribute("error.type").is_none() {
        out.push_str("  ERROR");
    }
    out
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .filter_map(|kv| Some((kv.key.clone(), text(kv.value.as_ref()?))))
        .collect()
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: &str, name: &str, start_ms: u64, dur_ms: u64) -> SpanRow {
        SpanRow {
            trace_id: "t1".into(),
            span_id: id.into(),
            parent_span_id: parent.into(),
            service: "svc".into(),
            name: name.into(),
            start_unix_nano: 1_000_000_000 + start_ms * 1_000_000,
            end_unix_nano: 1_000_000_000 + (start_ms + dur_ms) * 1_000_000,
            attributes: BTreeMap::from([("messaging.kafka.message.key".into(), "o-1".into())]),
            error: false,
        }
    }

    #[test]
    fn children_are_drawn_under_their_parent_in_start_order() {
        let spans = vec![
            span("c", "b", "process t", 30, 10),
            span("a", "remote", "POST /orders", 0, 20),
            span("d", "b", "process t (copy)", 60, 5),
            span("b", "a", "send t", 10, 15),
        ];
        assert_eq!(traces_of_order(&spans, "o-1"), ["t1"]);
        assert!(traces_of_order(&spans, "o-2").is_empty());
        let text = render_trace(&spans, "t1");
        // The span column starts after the 16-wide service column and one space.
        let names: Vec<&str> = text
            .lines()
            .skip(2)
            .map(|l| l.split_once("svc").map_or("", |(_, rest)| &rest[14..]))
            .collect();
        assert_eq!(
            names,
            [
                "POST /orders",
                "└ send t",
                "  └ process t",
                "  └ process t (copy)"
            ],
            "{text}"
        );
        assert!(text.starts_with("trace t1  4 spans  65.0 ms"), "{text}");
    }
}
