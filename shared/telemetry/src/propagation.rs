//! Carrying a trace across the two hops that are not a function call: the database
//! (an outbox row waits there until the relay picks it up) and Kafka (a message waits
//! there until a consumer reads it). docs/en/07-tracing-and-metrics.md draws the chain.
//!
//! The context travels in its W3C Trace Context form, two short strings:
//!
//! ```text
//! traceparent: 00-<trace id, 32 hex>-<parent span id, 16 hex>-<flags, 2 hex>
//! tracestate:  vendor=value,...   (usually empty)
//! ```
//!
//! - `outbox::enqueue` stores [`TraceHeaders::current`] in the row's `traceparent` and
//!   `tracestate` columns, inside the business transaction;
//! - the relay turns the row's columns back into a [`Context`] ([`TraceHeaders::context`]),
//!   opens its PRODUCER span under it and writes that span's context into the Kafka
//!   headers ([`inject_kafka`]);
//! - the consumer reads the headers ([`extract`]) and opens its CONSUMER span under them;
//! - an HTTP server does the same with an incoming `traceparent` request header.
//!
//! Only the W3C format is used (no baggage, no vendor formats): one propagator, named
//! here, rather than a process-wide global that any library could swap.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::message::{Header, OwnedHeaders};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header (and Kafka header, and outbox column) names.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// A span context in its W3C text form: what an outbox row stores and a Kafka message
/// carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeaders {
    pub traceparent: String,
    /// Empty when no vendor added state (the common case); stored as NULL then.
    pub tracestate: Option<String>,
}

impl TraceHeaders {
    /// The context of the current `tracing` span, or `None` outside any traced span.
    pub fn current() -> Option<Self> {
        Self::of_span(&tracing::Span::current())
    }

    /// The context of `span`, or `None` when it is not traced (disabled by the filter,
    /// or no OpenTelemetry layer installed).
    pub fn of_span(span: &tracing::Span) -> Option<Self> {
        Self::of_context(&span.context())
    }

    /// The W3C form of `cx`, or `None` when `cx` has no valid span.
    pub fn of_context(cx: &Context) -> Option<Self> {
        if !cx.span().span_context().is_valid() {
            return None;
        }
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(cx, &mut carrier);
        Some(Self {
            traceparent: carrier.remove(TRACEPARENT)?,
            tracestate: carrier.remove(TRACESTATE).filter(|s| !s.is_empty()),
        })
    }

    /// Rebuilds a `TraceHeaders` from stored columns; `None` without a `traceparent`
    /// (a row written outside any trace, or before the columns existed).
    pub fn from_columns(traceparent: Option<String>, tracestate: Option<String>) -> Option<Self> {
        Some(Self {
            traceparent: traceparent?,
            tracestate,
        })
    }

    /// The remote parent context these headers describe; an empty context (so a new
    /// trace starts) when `traceparent` is malformed.
    pub fn context(&self) -> Context {
        extract(|name| match name {
            TRACEPARENT => Some(self.traceparent.as_str()),
            TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        })
    }
}

/// Reads a remote parent context through `get` (a header lookup: Kafka record headers,
/// HTTP request headers). An empty context when there is no valid `traceparent`.
pub fn extract<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Context {
    let mut carrier = HashMap::new();
    for name in [TRACEPARENT, TRACESTATE] {
        if let Some(value) = get(name) {
            carrier.insert(name.to_owned(), value.to_owned());
        }
    }
    TraceContextPropagator::new().extract(&carrier)
}

/// Adds `span`'s context to Kafka `headers` as `traceparent` (and `tracestate`); the
/// headers come back unchanged when `span` is not traced.
pub fn inject_kafka(span: &tracing::Span, headers: OwnedHeaders) -> OwnedHeaders {
    let Some(trace) = TraceHeaders::of_span(span) else {
        return headers;
    };
    let headers = headers.insert(Header {
        key: TRACEPARENT,
        value: Some(trace.traceparent.as_str()),
    });
    match &trace.tracestate {
        Some(state) => headers.insert(Header {
            key: TRACESTATE,
            value: Some(state.as_str()),
        }),
        None => headers,
    }
}

/// Makes `parent` the parent of `span`, which must not have been entered yet (a
/// started span's parent is fixed). An empty `parent` leaves `span` where it is: under
/// the current span, or the root of a new trace.
pub fn set_parent(span: &tracing::Span, parent: Context) {
    if parent.span().span_context().is_valid() {
        // Fails only when the span is disabled or already started; either way it keeps
        // the parent it has, which costs the trace one link, not the message.
        let _ = span.set_parent(parent);
    }
}
