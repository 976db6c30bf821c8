//! `GET /orders/{id}` (with its timeline) and `GET /orders` (recent ones).

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use uuid::Uuid;

use super::error::ProblemDetails;
use super::order_view::{OrderSummary, OrderView, load_order};
use super::{ApiError, ApiState};

#[utoipa::path(
    get,
    path = "/orders/{id}",
    tag = "orders",
    summary = "An order and its timeline",
    description = "The order with what happened to it: created, its event published (topic, \
        partition, offset, attempts), payment succeeded or failed.",
    params(("id" = Uuid, Path, description = "The order id (from the Location of POST /orders)")),
    responses(
        (status = 200, body = OrderView),
        (status = 400, description = "The id is not a UUID", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No order has this id", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 405, description = "Method not allowed (see Allow)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable, or no answer within the request timeout",
            body = ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "seconds"))),
    )
)]
pub async fn get_order(
    State(state): State<ApiState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<OrderView>, ApiError> {
    // Rejected by us, not by axum: its rejection is text/plain, every error here is
    // problem+json.
    let Path(id) = id.map_err(|e| ApiError::InvalidParameter {
        name: "id",
        reason: format!(
            "{}; expected a UUID, e.g. from the Location of POST /orders",
            e.body_text()
        ),
    })?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(load_order(&mut conn, id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many orders, newest first: 1 to 200 (default 20).
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 200)]
    pub limit: i64,
}

/// The most orders one `GET /orders` lists.
const MAX_LIMIT: i64 = 200;

fn default_limit() -> i64 {
    20
}

#[utoipa::path(
    get,
    path = "/orders",
    tag = "orders",
    summary = "Recent orders, newest first",
    params(ListQuery),
    responses(
        (status = 200, body = Vec<OrderSummary>),
        (status = 400, description = "limit is not a whole number from 1 to 200", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 405, description = "Method not allowed (see Allow)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable, or no answer within the request timeout",
            body = ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "seconds"))),
    )
)]
pub async fn list_orders(
    State(state): State<ApiState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<OrderSummary>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::InvalidParameter {
        name: "limit",
        reason: e.body_text(),
    })?;
    // Refused, not clamped: the document says 1 to 200, and a client asking for 1000
    // should learn it gets at most 200.
    if !(1..=MAX_LIMIT).contains(&query.limit) {
        return Err(ApiError::InvalidParameter {
            name: "limit",
            reason: format!("{} is out of range: 1 to {MAX_LIMIT}", query.limit),
        });
    }
    let limit = query.limit;
    let rows = sqlx::query_as!(
        OrderSummary,
        r#"SELECT id, status, amount_minor, currency, created_at
           FROM orders ORDER BY created_at DESC LIMIT $1"#,
        limit
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows))
}
