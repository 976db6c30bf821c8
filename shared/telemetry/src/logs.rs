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
