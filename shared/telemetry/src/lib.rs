//! Tracing, OpenTelemetry and metrics shared by both services
//! (docs/en/07-tracing-and-metrics.md).
//!
//! - Logs go to stderr, human-readable by default, JSON with `LOG_FORMAT=json`; the
//!   level comes from `RUST_LOG` (default `info`). Lines inside a traced span carry its
//!   `trace_id` and `span_id` (`logs.rs`).
//! - Spans always get OpenTelemetry ids, so the trace context is carried across the
//!   outbox and Kafka (`propagation.rs`) whether or not this process exports anything.
//!   They are exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and to
//!   an OTLP/JSON file when `OTEL_TRACES_FILE` is set; with neither, nothing is sent
//!   and nothing retries or complains in the background.
//! - [`Metrics`] is a service's Prometheus registry (`metrics.rs`, the metric names).

mod file_export;
mod logs;
pub mod metrics;
pub mod propagation;
pub mod spans;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

pub use file_export::JsonFileExporter;
pub use metrics::Metrics;

/// The spans that are traced (and exported): `info` and above, whatever `RUST_LOG`
/// says, so quieting the logs never breaks a trace in the middle.
const TRACE_LEVEL: LevelFilter = LevelFilter::INFO;

/// Keeps the span exporters alive; dropping it flushes the spans still buffered.
#[derive(Debug)]
#[must_use = "dropping the guard shuts the exporter down"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Flush what is buffered; a collector that went away is not worth a panic.
            if let Err(err) = provider.shutdown() {
                eprintln!("telemetry: span exporter shutdown: {err}");
            }
        }
    }
}

/// Installs the global subscriber for `service_name`, with the exporters the
/// environment asks for. Call once, first thing in `main`.
pub fn init(service_name: &'static str) -> Result<TelemetryGuard, TelemetryError> {
    let mut provider = SdkTracerProvider::builder().with_resource(resource(service_name));
    if let Some(_endpoint) = non_empty_var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        // The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (and the other OTEL_* variables)
        // itself. Batched: a slow collector never holds a request up.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        provider = provider.with_batch_exporter(exporter);
    }
    if let Some(path) = non_empty_var("OTEL_TRACES_FILE") {
        let exporter = JsonFileExporter::open(&path)
            .map_err(|e| TelemetryError::File(format!("{path}: {e}")))?;
        provider = provider.with_batch_exporter(exporter);
    }
    install(service_name, provider.build(), std::io::stderr)
}

/// For tests: every span goes to `exporter` as soon as it ends (an in-memory
/// exporter, to assert on the spans of a run), and log lines go to the test harness's
/// captured output instead of stderr.
pub fn init_with_exporter<E: SpanExporter + 'static>(
    service_name: &'static str,
    exporter: E,
) -> Result<TelemetryGuard, TelemetryError> {
    let provider = SdkTracerProvider::builder()
        .with_resource(resource(service_name))
        .with_simple_exporter(exporter)
        .build();
    install(
        service_name,
        provider,
        tracing_subscriber::fmt::TestWriter::default,
    )
}

fn install<W>(
    service_name: &'static str,
    provider: SdkTracerProvider,
    writer: W,
) -> Result<TelemetryGuard, TelemetryError>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    subscriber(&provider, service_name, filter, json, writer)
        .try_init()
        .map_err(|e| TelemetryError::Subscriber(e.to_string()))?;
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}

/// The layers: logs (filtered by `filter`, i.e. `RUST_LOG`), OpenTelemetry spans and
/// the log lines' trace ids (both filtered by [`TRACE_LEVEL`], so quieting the logs
/// never breaks a trace). Chained one by one: `on_register_dispatch`, which the trace-id
/// layer needs, does not reach the layers of a `Vec`.
fn subscriber<W>(
    provider: &SdkTracerProvider,
    service_name: &'static str,
    filter: EnvFilter,
    json: bool,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync + for<'a> tracing_subscriber::registry::LookupSpan<'a>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt_layer: Box<dyn Layer<Registry> + Send + Sync> = if json {
        tracing_subscriber::fmt::layer()
            .event_format(logs::WithTraceIds::new(
                tracing_subscriber::fmt::format()
                    .json()
                    .with_current_span(true),
                true,
            ))
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .with_writer(writer)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .event_format(logs::WithTraceIds::new(
                tracing_subscriber::fmt::format().with_ansi(false),
                false,
            ))
            .with_ansi(false)
            .with_writer(writer)
            .boxed()
    };
    Registry::default()
        .with(fmt_layer.with_filter(filter))
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer(service_name))
                .with_filter(TRACE_LEVEL),
        )
        .with(logs::TraceIdLayer::default().with_filter(TRACE_LEVEL))
}

/// `service.name` (what Jaeger and `trace-view` show per span) and the process id, so
/// two instances of one service can be told apart.
fn resource(service_name: &'static str) -> Resource {
    Resource::builder()
        .with_service_name(service_name)
        .with_attribute(KeyValue::new("process.pid", i64::from(std::process::id())))
        .build()
}

fn non_empty_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTEL_EXPORTER_OTLP_ENDPOINT: cannot build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("OTEL_TRACES_FILE: cannot open the span file {0}")]
    File(String),
    #[error("a tracing subscriber is already installed: {0}")]
    Subscriber(String),
}
