//! Log lines that carry the trace: every line written inside a traced span gets the
//! span's `trace_id` and `span_id`, so a log search by trace id finds every line of one
//! order across both services, and a trace viewer's span id finds its lines.
//!
//! Two parts, because an event formatter cannot reach the OpenTelemetry context itself
//! (it runs while the dispatcher is busy with the event):
//! - [`TraceIdLayer`] computes the ids when a span is entered and keeps them in the
//!   span's extensions;
//! - [`WithTraceIds`] wraps the usual formatter and adds them to the line: as two JSON
//!   fields with `LOG_FORMAT=json`, as `trace_id=… span_id=…` at the end otherwise.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use tracing::dispatcher::WeakDispatch;
use tracing::span::Id;
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// A span's ids in their usual hex form.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TraceIds {
    trace_id: String,
    span_id: String,
}

/// Stores each entered span's trace and span id in its extensions.
#[derive(Debug, Default)]
pub struct TraceIdLayer {
    dispatch: std::sync::OnceLock<WeakDispatch>,
}

impl<S> tracing_subscriber::Layer<S> for TraceIdLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if span.extensions().get::<TraceIds>().is_some() {
            return;
        }
        let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        // No extension lock may be held here: the OpenTelemetry layer takes its own.
        let Some(cx) = tracing_opentelemetry::get_otel_context(id, &dispatch) else {
            return;
        };
        let otel = cx.span();
        let span_context = otel.span_context();
        if span_context.is_valid() {
            span.extensions_mut().insert(TraceIds {
                trace_id: span_context.trace_id().to_string(),
                span_id: span_context.span_id().to_string(),
            });
        }
    }
}

/// Wraps a formatter and adds the current span's ids to each line.
#[derive(Debug)]
pub struct WithTraceIds<F> {
    inner: F,
    json: bool,
}

impl<F> WithTraceIds<F> {
    pub fn new(inner: F, json: bool) -> Self {
        Self { inner, json }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ids = ctx
            .lookup_current()
            .and_then(|span| span.extensions().get::<TraceIds>().cloned());
        let Some(ids) = ids else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        if self.json {
            // The JSON formatter writes one object per line: add the ids as its first
            // two fields.
            match line.strip_prefix('{') {
                Some(rest) => write!(
                    writer,
                    "{{\"trace_id\":\"{}\",\"span_id\":\"{}\",{rest}",
                    ids.trace_id, ids.span_id
                ),
                None => writer.write_str(&line),
            }
        } else {
            let body = line.strip_suffix('\n').unwrap_or(&line);
            writeln!(
                writer,
                "{body} trace_id={} span_id={}",
                ids.trace_id, ids.span_id
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

    /// Collects what the formatter writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_logged_inside_a_span(json: bool) -> (Vec<String>, String, String) {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let buffer = Buffer::default();
        let writer = buffer.clone();
        // The subscriber `init` installs, writing to the buffer.
        let subscriber = crate::subscriber(
            &provider,
            "test",
            tracing_subscriber::EnvFilter::new("info"),
            json,
            move || writer.clone(),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside any span");
            tracing::info_span!("request").in_scope(|| tracing::info!(order = 7, "inside"));
        });
        let span = exporter
            .get_finished_spans()
            .expect("spans")
            .pop()
            .expect("the request span");
        let text = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("utf-8");
        (
            text.lines().map(str::to_owned).collect(),
            span.span_context.trace_id().to_string(),
            span.span_context.span_id().to_string(),
        )
    }

    #[test]
    fn json_lines_inside_a_span_carry_its_trace_and_span_id() {
        let (lines, trace_id, span_id) = lines_logged_inside_a_span(true);
        assert_eq!(lines.len(), 2, "{lines:?}");
        let outside: serde_json::Value = serde_json::from_str(&lines[0]).expect("json");
        assert!(outside.get("trace_id").is_none(), "{outside}");
        let inside: serde_json::Value = serde_json::from_str(&lines[1]).expect("json");
        assert_eq!(inside["trace_id"], trace_id.as_str(), "{inside}");
        assert_eq!(inside["span_id"], span_id.as_str(), "{inside}");
        assert_eq!(
            inside["fields"]["order"], 7,
            "the usual fields stay: {inside}"
        );
    }

    #[test]
    fn text_lines_end_with_the_ids() {
        let (lines, trace_id, span_id) = lines_logged_inside_a_span(false);
        assert!(!lines[0].contains("trace_id="), "{}", lines[0]);
        assert!(
            lines[1].ends_with(&format!(" trace_id={trace_id} span_id={span_id}")),
            "{}",
            lines[1]
        );
    }
}
