//! The page and its JSON: the state once a second as server-sent events, the buttons as
//! POSTs. The assets are compiled in (no CDN, no build step: it works offline).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::Shared;
use crate::faults::{self, Action};
use crate::stack::Mode;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX)))
        .route("/app.js", get(|| asset("text/javascript", APP_JS)))
        .route("/style.css", get(|| asset("text/css", STYLE)))
        .route("/api/state", get(state))
        .route("/api/events", get(events))
        .route("/api/action", post(action))
        .route("/api/load", post(load))
        .route("/api/orders/recent", get(recent))
        .route("/api/orders/{id}", get(follow))
        .with_state(shared)
}

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Everything the page shows, in one document.
#[derive(Debug, Serialize)]
pub struct PageState {
    pub stack: &'static str,
    pub combined_nodes: bool,
    pub refused: Option<String>,
    pub counters: crate::counters::Snapshot,
    pub history: Vec<(i64, i64, i64)>,
    pub verdict: crate::verdict::Verdict,
    pub load: crate::load::LoadState,
    pub marks: Vec<faults::Mark>,
    pub faulted: crate::stack::Faulted,
    /// The red banner: the unsafe settings payment-service runs with, if any.
    pub unsafe_banner: Option<String>,
}

fn page_state(s: &Shared) -> PageState {
    let faulted = s.faulted.lock().map(|f| f.clone()).unwrap_or_default();
    let unsafe_banner = (!faulted.toggles.is_empty()).then(|| {
        let vars: Vec<String> = faulted
            .toggles
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "UNSAFE: payment-service runs with {} — a teaching toggle, not a setting for production",
            vars.join(" ")
        )
    });
    PageState {
        stack: match s.targets.mode {
            Mode::Native => "make up (native)",
            Mode::OwnStack => "own stack (shared servers, own databases, topics, services)",
            Mode::OwnCluster => "own stack on a Kafka cluster of its own",
        },
        combined_nodes: s.targets.combined_nodes,
        refused: s.refused.clone(),
        counters: s.counters.latest(),
        history: s.counters.history(),
        verdict: s.verdict.get(),
        load: s.load.state(),
        marks: s.marks.recent(40),
        faulted,
        unsafe_banner,
    }
}

async fn state(State(s): State<Arc<Shared>>) -> Json<PageState> {
    Json(page_state(&s))
}

/// The state every second, as server-sent events (`event: state`).
async fn events(
    State(s): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold(s, |s| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let event = Event::default()
            .event("state")
            .json_data(page_state(&s))
            .unwrap_or_else(|_| Event::default().comment("unserialisable"));
        Some((Ok(event), s))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Debug, Serialize)]
struct Outcome {
    ok: bool,
    detail: String,
}

async fn action(State(s): State<Arc<Shared>>, Json(action): Json<Action>) -> Response {
    let label = action.label();
    let leader = s.counters.latest().partitions.and_then(|p| p.leader_of_0);
    let mut control = s.control.lock().await;
    let result = faults::perform(&s.targets, &mut control, leader, &action).await;
    if let Ok(mut f) = s.faulted.lock() {
        *f = control.faulted();
    }
    drop(control);
    s.marks.push(label.clone(), &result);
    tracing::info!(action = %label, ok = result.is_ok(), "action");
    let (status, outcome) = match result {
        Ok(detail) => (StatusCode::OK, Outcome { ok: true, detail }),
        Err(detail) => (StatusCode::CONFLICT, Outcome { ok: false, detail }),
    };
    (status, Json(outcome)).into_response()
}

#[derive(Debug, Deserialize)]
struct LoadRequest {
    rate: u32,
    seconds: u64,
}

async fn load(State(s): State<Arc<Shared>>, Json(r): Json<LoadRequest>) -> Response {
    match s.load.set(&s.targets.order_url, r.rate, r.seconds) {
        Ok(()) => {
            let label = if r.rate == 0 {
                "load stopped".to_owned()
            } else {
                format!("load {}/s for {} s", r.rate, r.seconds)
            };
            s.marks.push(label.clone(), &Ok(String::new()));
            (
                StatusCode::OK,
                Json(Outcome {
                    ok: true,
                    detail: label,
                }),
            )
                .into_response()
        }
        Err(detail) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(Outcome { ok: false, detail }),
        )
            .into_response(),
    }
}

async fn recent(State(s): State<Arc<Shared>>) -> Json<Vec<crate::follow::Recent>> {
    Json(crate::follow::recent(&s.targets).await)
}

async fn follow(State(s): State<Arc<Shared>>, Path(id): Path<uuid::Uuid>) -> Response {
    Json(crate::follow::follow(&s.targets, id).await).into_response()
}
