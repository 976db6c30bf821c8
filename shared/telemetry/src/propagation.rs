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

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    #[test]
    fn a_context_survives_the_trip_through_two_strings() {
        let sent = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
            SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "x")]).expect("state"),
        );
        let headers =
            TraceHeaders::of_context(&Context::new().with_remote_span_context(sent.clone()))
                .expect("a valid context");
        assert_eq!(
            headers.traceparent,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(headers.tracestate.as_deref(), Some("vendor=x"));

        // Stored in two columns, read back by the relay.
        let stored = TraceHeaders::from_columns(
            Some(headers.traceparent.clone()),
            headers.tracestate.clone(),
        )
        .expect("stored");
        let received = stored.context();
        assert_eq!(received.span().span_context(), &sent);
    }

    #[test]
    fn no_or_a_malformed_traceparent_means_a_new_trace() {
        assert_eq!(TraceHeaders::from_columns(None, Some("a=b".into())), None);
        assert_eq!(TraceHeaders::of_context(&Context::new()), None);
        let garbage = extract(|name| (name == TRACEPARENT).then_some("00-not-a-trace-01"));
        assert!(!garbage.span().span_context().is_valid());
    }
}
