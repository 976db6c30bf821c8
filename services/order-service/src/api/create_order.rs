//! `POST /orders`: the order and its `OrderCreated` event, in one transaction (with the
//! request's `Idempotency-Key`, when it has one) — or, with `PUBLISH_MODE=direct`, the
//! order in the transaction and the event sent straight to Kafka after the commit
//! (`crate::direct_publish`).

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use chrono::{SubsecRound, Utc};
use outbox::OutboxMessage;
use serde::Deserialize;
use telemetry::propagation::TraceHeaders;
use tracing::Instrument;
use uuid::Uuid;

use super::error::{FieldError, ProblemDetails};
use super::idempotency::{self, Claim, IdempotencyKey, SavedResponse};
use super::order_view::load_order;
use super::{ApiError, ApiState};
use crate::direct_publish::{LoggedEvent, PublishError};
use crate::events::{ORDER_CREATED, OrderCreated, SCHEMA_VERSION};

/// The request body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"customer_id": "c-1", "amount_minor": 1999, "currency": "EUR"}))]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// 1 to 64 visible ASCII characters (no spaces, no control characters).
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]{1,64}$")]
    pub customer_id: String,
    /// The amount in minor units (cents): integers, no floating-point money.
    #[schema(minimum = 1, maximum = 10_000_000_000_i64)]
    #[serde(deserialize_with = "whole_number")]
    pub amount_minor: i64,
    /// ISO 4217 code, three upper-case letters.
    #[schema(min_length = 3, max_length = 3, pattern = "^[A-Z]{3}$")]
    pub currency: String,
}

/// A whole number, written `1999` or `1999.0`: JSON Schema counts both as an integer, and
/// the document says `integer`. A fraction (`19.99`) or a number past i64 is refused (400).
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(whole) = number.as_i64() {
        return Ok(whole);
    }
    // Within ±2^63 a float with no fraction converts exactly (its magnitude is below
    // 2^63, so `as` neither saturates nor rounds).
    #[allow(clippy::cast_possible_truncation)]
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.223_372_036_854_775e18 => Ok(f as i64),
        _ => Err(serde::de::Error::custom(format!(
            "invalid amount {number}: expected a whole number of minor units"
        ))),
    }
}

/// The largest amount accepted: 10^10 minor units (100 million in major units). The
/// OpenAPI document states the same bounds (`#[schema]` above); `make test` checks the
/// two agree by fuzzing (`scripts/api-fuzz.sh`).
const MAX_AMOUNT_MINOR: i64 = 10_000_000_000;
/// The longest `customer_id`.
const MAX_CUSTOMER_ID: usize = 64;

impl CreateOrder {
    /// Every problem at once, so the client fixes them in one go.
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut errors = Vec::new();
        // Visible ASCII only: a `\u0000` would otherwise reach Postgres, which refuses
        // it in `text` (SQLSTATE 22P05) — a 503 for what is the client's mistake.
        let customer = &self.customer_id;
        if customer.is_empty()
            || customer.len() > MAX_CUSTOMER_ID
            || !customer.bytes().all(|b| b.is_ascii_graphic())
        {
            errors.push(FieldError {
                field: "customer_id",
                reason: format!(
                    "1 to {MAX_CUSTOMER_ID} visible ASCII characters (no spaces or control characters)"
                ),
            });
        }
        if self.amount_minor <= 0 || self.amount_minor > MAX_AMOUNT_MINOR {
            errors.push(FieldError {
                field: "amount_minor",
                reason: format!("a whole number of minor units, 1 to {MAX_AMOUNT_MINOR}"),
            });
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            errors.push(FieldError {
                field: "currency",
                reason: "an ISO 4217 code: three upper-case letters, e.g. EUR".into(),
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Invalid(errors))
        }
    }
}

#[utoipa::path(
    post,
    path = "/orders",
    tag = "orders",
    summary = "Place an order",
    description = "Stores the order and its OrderCreated event in one transaction (the outbox); \
        the relay publishes the event. Send an Idempotency-Key to make retries safe.",
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$",
            description = "1 to 255 visible ASCII characters, e.g. a UUID made once per order \
                and sent again on every retry of it. Same key + same body: the first answer \
                again (Idempotent-Replayed: true). Kept IDEMPOTENCY_RETENTION_HOURS (24).")
    ),
    request_body(content = CreateOrder, content_type = "application/json"),
    responses(
        (status = 201, description = "Created (or the first answer replayed)", body = super::order_view::OrderView,
            headers(("Location" = String, description = "/orders/{id}"),
                    ("Idempotent-Replayed" = String, description = "`true` on a replayed answer")),
            links(("GetOrderById" = (operation_id = "get_order", parameters(("id" = "$response.body#/id")),
                description = "The order just created, with its timeline")))),
        (status = 400, description = "Malformed body or Idempotency-Key", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 405, description = "Method not allowed on /orders (see Allow)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "A request with this key is still in flight; retry after Retry-After",
            body = ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "seconds"))),
        (status = 413, description = "Body larger than 16 KiB", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not application/json", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (see `errors`), or the key was used with another body",
            body = ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "Internal error; or, in PUBLISH_MODE=direct, the event could not be \
            written to the send log (the order IS stored)",
            body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable, or no answer within the request timeout; or, in \
            PUBLISH_MODE=direct, Kafka did not acknowledge (the order IS stored, its event will be re-pushed)",
            body = ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "seconds"))),
    )
)]
pub async fn create_order(
    State(state): State<ApiState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // A malformed key is refused before anything else: a request we could not
    // deduplicate must not create an order.
    let key = IdempotencyKey::from_headers(&headers)?;
    if !is_json(&headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    // Larger than `MAX_BODY_BYTES` (or cut off): 413 / 400 as problem+json.
    let body = body.map_err(|e| ApiError::BodyRejected(e.status(), e.body_text()))?;
    let request: CreateOrder =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedBody(e.to_string()))?;
    // Neither a 400 nor a 422 is stored under the key: nothing was created, and the
    // client may fix the body and send it again with the same key.
    request.validate()?;

    // Postgres keeps microseconds: truncate here, so the answer (and the event) carry the
    // same instant a later GET reads back.
    let created_at = Utc::now().trunc_subsecs(6);
    let order_id = Uuid::now_v7();
    let event = OrderCreated {
        schema_version: SCHEMA_VERSION,
        event_id: Uuid::now_v7(),
        order_id,
        customer_id: request.customer_id.clone(),
        amount_minor: request.amount_minor,
        currency: request.currency.clone(),
        created_at,
    };
    let mut message = OutboxMessage::new(
        state.order_events_topic.clone(),
        order_id.to_string(),
        ORDER_CREATED,
        serde_json::to_value(&event).unwrap_or_default(),
    )
    .with_header("schema-version", SCHEMA_VERSION.to_string());
    message.id = event.event_id;

    // From here on the work runs in a task of its own, and the handler only awaits it.
    // hyper drops the handler's future when the client hangs up; had the commit and the
    // send-log line been in that future, a client giving up between them would leave a
    // committed order whose event exists nowhere (direct mode), while its retry gets
    // the replayed 201. A spawned task runs to its end whatever the client does: the
    // JoinHandle dropped with the handler does not cancel it (docs/en/02-produce.md).
    let fingerprint = key
        .as_ref()
        .map(|_| idempotency::request_hash(&method, uri.path(), &body));
    // In the request's span: the outbox row and the send log carry its trace context.
    let work = tokio::spawn(
        store_and_publish(state, key, fingerprint, event, message)
            .instrument(tracing::Span::current()),
    );
    work.await.map_err(|e| ApiError::Internal(e.to_string()))?
}

/// The transaction (key, order, outbox row), the commit and, in direct mode, the send:
/// everything after validation, run to the end even if the client is gone.
async fn store_and_publish(
    state: ApiState,
    key: Option<IdempotencyKey>,
    fingerprint: Option<String>,
    event: OrderCreated,
    message: OutboxMessage,
) -> Result<Response, ApiError> {
    let order_id = event.order_id;
    let created_at = event.created_at;
    // The note's steps 1-3: business row and message row in one transaction. If either
    // insert fails, neither exists; once the commit returns, the event cannot be lost.
    // The idempotency key joins them, so key, order and event commit together.
    let mut tx = state.pool.begin().await?;
    if let (Some(key), Some(fingerprint)) = (&key, &fingerprint) {
        // May wait for a concurrent request with this key (bounded; see idempotency.rs).
        match idempotency::claim(&mut tx, key, fingerprint, state.idempotency_retention).await? {
            Claim::Replay(first) => return Ok(first.replay()),
            Claim::New => {}
        }
    }
    sqlx::query!(
        r#"INSERT INTO orders (id, customer_id, amount_minor, currency, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $5)"#,
        order_id,
        event.customer_id,
        event.amount_minor,
        event.currency,
        created_at,
    )
    .execute(&mut *tx)
    .await?;
    // Outbox mode: the event commits with the order. Direct mode: no outbox row; the
    // event is sent after the commit (below).
    if state.direct.is_none() {
        outbox::enqueue(&mut tx, &message).await?;
    }

    let answer = SavedResponse {
        status: StatusCode::CREATED,
        location: Some(format!("/orders/{order_id}")),
        // Read back inside the transaction: the answer stored with the key is exactly
        // what this transaction wrote (a read after the commit could already show the
        // event published, and the first answer and its replay would differ).
        body: serde_json::to_value(load_order(&mut tx, order_id).await?).unwrap_or_default(),
    };
    if let Some(key) = &key {
        idempotency::finish(&mut tx, key, &answer).await?;
    }
    tx.commit().await?;

    if let Some(direct) = &state.direct {
        // Crash point A2 (direct mode only): the order is committed, its event is not yet
        // in the send log. A crash here loses the event: no outbox row, no log line,
        // nothing will ever send it. The outbox closes exactly this window
        // (docs/en/02-produce.md, "The log-based alternative").
        lifecycle::CrashPoint::A2.reached();
        // The request's trace context goes into the send log with the event: the send
        // below, or a re-push later, continues this request's trace.
        let trace = TraceHeaders::current();
        let logged = LoggedEvent {
            topic: message.topic,
            key: message.key,
            event_type: message.event_type,
            headers: message.headers,
            payload: message.payload,
            traceparent: trace.as_ref().map(|t| t.traceparent.clone()),
            tracestate: trace.and_then(|t| t.tracestate),
        };
        if let Err(error) = direct.publish(event.event_id, &logged).await {
            // The order stays stored: the answer says so, and (when the event reached
            // the send log) the re-push job sends it later.
            return Err(ApiError::EventNotPublished {
                order_id,
                logged: !matches!(error, PublishError::Log(_)),
                reason: error.to_string(),
            });
        }
    }
    // Crash point A1: committed (and in direct mode acknowledged), not yet answered. The
    // client sees an error and retries; the Idempotency-Key makes the retry replay this
    // answer instead of a second order.
    lifecycle::CrashPoint::A1.reached();

    Ok(answer.first())
}

/// `Content-Type: application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(customer: &str, amount: i64, currency: &str) -> CreateOrder {
        CreateOrder {
            customer_id: customer.into(),
            amount_minor: amount,
            currency: currency.into(),
        }
    }

    fn fields(result: Result<(), ApiError>) -> Vec<&'static str> {
        match result {
            Err(ApiError::Invalid(errors)) => errors.iter().map(|e| e.field).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_order_passes() {
        order("c-1", 1999, "EUR").validate().expect("valid");
    }

    #[test]
    fn every_bad_field_is_named() {
        assert_eq!(
            fields(order(" ", 0, "eur").validate()),
            ["customer_id", "amount_minor", "currency"]
        );
        assert_eq!(
            fields(order("c", MAX_AMOUNT_MINOR + 1, "EUR").validate()),
            ["amount_minor"]
        );
        assert_eq!(fields(order("c", 5, "EURO").validate()), ["currency"]);
        for bad in ["c\u{0}1", "c 1", "c\t", "café", &"c".repeat(65)] {
            assert_eq!(
                fields(order(bad, 5, "EUR").validate()),
                ["customer_id"],
                "{bad:?}"
            );
        }
        order(&"c".repeat(64), 5, "EUR")
            .validate()
            .expect("64 is allowed");
    }
}
