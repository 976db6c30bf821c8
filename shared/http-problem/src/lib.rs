//! RFC 9457 `application/problem+json` responses.
//!
//! Every error a client can get from the services has a stable `type` (a URI that
//! names the kind of problem), a human `title`, the HTTP `status` and a `detail` that
//! says what to do. Extra members (e.g. which dependency is down, which field is bad)
//! go into `extensions` and are flattened into the JSON object.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

pub const CONTENT_TYPE: &str = "application/problem+json";

/// One problem detail object.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
    #[serde(skip)]
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Problem {
    /// `kind` becomes the `type` URI `/problems/<kind>`, relative to the service.
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("/problems/{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            extensions: Map::new(),
            headers: Vec::new(),
        }
    }

    /// Adds a member to the JSON object (RFC 9457 "extension member").
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a response header (e.g. `Retry-After`).
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

/// Middleware (`axum::middleware::from_fn(http_problem::errors_as_problems)`): turns
/// every error answer that is not problem+json yet into one — the ones axum writes itself
/// as text/plain or empty: unknown path (404), method not allowed (405, `Allow` kept),
/// a rejected extractor. A client (and a fuzzer) then finds one error format everywhere.
pub async fn errors_as_problems(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(CONTENT_TYPE.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    // What axum said, as the detail (its rejections are short sentences).
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .filter(|t| !t.trim().is_empty());
    let title = status.canonical_reason().unwrap_or("Error");
    let kind = title.to_ascii_lowercase().replace(' ', "-");
    let detail = text.unwrap_or_else(|| match status {
        StatusCode::NOT_FOUND => "no such path; GET /openapi.json lists the API".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => {
            "this path does not take this method; the Allow header lists those it takes".to_owned()
        }
        _ => title.to_owned(),
    });
    let mut problem = Problem::new(status, &kind, title, detail);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem = problem.with_header(name.clone(), value.clone());
        }
    }
    problem.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_the_rfc_9457_members_and_extensions() {
        let p = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready",
            "Kafka is down",
        )
        .with("down", vec!["kafka"]);
        let v = serde_json::to_value(&p).expect("serializes");
        assert_eq!(v["type"], "/problems/not-ready");
        assert_eq!(v["status"], 503);
        assert_eq!(v["down"][0], "kafka");
        let r = p.into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
    }

    #[tokio::test]
    async fn axum_own_errors_become_problems_and_keep_their_headers() {
        use tower::ServiceExt as _;
        let app = axum::Router::new()
            .route("/x", axum::routing::get(|| async { "x" }))
            .layer(axum::middleware::from_fn(errors_as_problems));
        let call = |method: &str, uri: &str| {
            let request = axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .body(axum::body::Body::empty())
                .expect("request");
            app.clone().oneshot(request)
        };
        let not_allowed = call("DELETE", "/x").await.expect("answer");
        assert_eq!(not_allowed.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(not_allowed.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        assert!(not_allowed.headers().contains_key(header::ALLOW));
        let missing = call("GET", "/nope").await.expect("answer");
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(missing.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let body = axum::body::to_bytes(missing.into_body(), 4096)
            .await
            .expect("body");
        let json: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["type"], "/problems/not-found");
        let fine = call("GET", "/x").await.expect("answer");
        assert_eq!(fine.status(), StatusCode::OK);
    }
}
