//! What every HTTP request leaves behind, and the `GET /metrics` route
//! (docs/en/07-tracing-and-metrics.md).
//!
//! One middleware, wrapped around every route of a service:
//! - a SERVER span `<METHOD> <route>`: the root of the order's trace, or the child of
//!   the caller's span when the request carries a W3C `traceparent` header. Whatever
//!   the handler writes to the outbox keeps this span's context, so the trace goes on
//!   across the database and Kafka;
//! - `http_requests_total` and `http_request_duration_seconds`, labelled with the
//!   method, the *matched route* (`/orders/{id}`, never the raw path: one series per
//!   route, not per order) and the status code.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use telemetry::Metrics;
use telemetry::metrics::names;
use telemetry::propagation;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use lifecycle::Shutdown;

/// Routes that are polled (probes, scrapes): counted, but not traced, so they do not
/// bury the traces of real requests.
const UNTRACED_ROUTES: [&str; 3] = ["/metrics", "/healthz", "/readyz"];

/// `router` with `GET /metrics` (rendering `metrics`) added and every route observed.
pub fn observe(router: Router, metrics: &Metrics) -> Router {
    let scrape = Router::new()
        .route("/metrics", get(render))
        .with_state(metrics.clone());
    router.merge(scrape).layer(middleware::from_fn_with_state(
        metrics.clone(),
        observe_request,
    ))
}

async fn observe_request(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let method = method_label(request.method()).to_owned();
    // Unmatched requests (404s) share one label value, so a scanner cannot create a
    // series per path it tries.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let span = if UNTRACED_ROUTES.contains(&route.as_str()) {
        Span::none()
    } else {
        let span = tracing::info_span!(
            "http request",
            otel.name = format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = Empty,
            "http.request.method" = %method,
            "http.route" = %route,
            "url.path" = request.uri().path(),
            "http.response.status_code" = Empty,
        );
        let parent =
            propagation::extract(|name| request.headers().get(name).and_then(|v| v.to_str().ok()));
        propagation::set_parent(&span, parent);
        span
    };

    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let took = started.elapsed();

    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let status = status.as_u16().to_string();
    let labels = [
        ("method", method.as_str()),
        ("route", route.as_str()),
        ("status", status.as_str()),
    ];
    metrics
        .counter(names::HTTP_REQUESTS_TOTAL, &labels)
        .increment(1);
    metrics
        .histogram(names::HTTP_REQUEST_DURATION_SECONDS, &labels)
        .record(took);
    response
}

/// `GET /metrics`: the Prometheus text exposition format.
async fn render(State(metrics): State<Metrics>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
}

/// Folds histogram samples into their buckets every few seconds until shutdown, so an
/// unscraped service's memory stays bounded (a scrape does the same work).
pub async fn metrics_upkeep(metrics: Metrics, shutdown: Shutdown) {
    lifecycle::every(Duration::from_secs(5), &shutdown, || async {
        metrics.run_upkeep();
    })
    .await;
}

/// The method as a label value: the standard methods by name, anything else `other`,
/// so a client inventing methods cannot create a series per method.
fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::method_label;
    use axum::http::Method;

    #[test]
    fn an_invented_method_is_labelled_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::POST), "POST");
        let invented = Method::from_bytes(b"BREW").expect("a token");
        assert_eq!(method_label(&invented), "other");
    }
}
