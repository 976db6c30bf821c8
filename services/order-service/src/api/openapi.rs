//! The API described as an OpenAPI 3.1 document, generated from the handlers' own
//! `#[utoipa::path]` attributes and the request/response types, so it cannot drift from
//! the code: `GET /openapi.json`, and Swagger UI at `/swagger-ui/` to try it.

use axum::Router;
use utoipa::{OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use super::create_order::{__path_create_order, CreateOrder};
use super::error::FieldError;
use super::read_orders::{
    __path_get_order, __path_list_orders, OrderSummary, OrderView, TimelineEntry,
};

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "order-service",
        description = "Orders written with their OrderCreated event in one transaction \
            (transactional outbox); payment outcomes come back over Kafka. \
            Errors are RFC 9457 application/problem+json."
    ),
    paths(create_order, get_order, list_orders),
    components(schemas(CreateOrder, OrderView, TimelineEntry, OrderSummary, FieldError, ProblemDetails)),
    tags((name = "orders", description = "Place orders and follow them to PAID or PAYMENT_FAILED"))
)]
pub struct ApiDoc;

/// The shape of every error answer (`http_problem::Problem` as it serialises).
/// Only for the document: the handlers build `Problem`s.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // read by the OpenAPI derive only
pub struct ProblemDetails {
    /// A stable identifier of the problem, e.g. `/problems/invalid-order`.
    #[schema(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    /// What happened and what to do.
    detail: String,
    /// For `invalid-order`: one entry per offending field.
    errors: Option<Vec<FieldError>>,
    /// For the idempotency problems.
    idempotency_key: Option<String>,
    /// For `broker-unavailable`: the order that IS stored.
    order_id: Option<String>,
}

/// `GET /openapi.json` and Swagger UI (`/swagger-ui/`), whose assets are compiled in.
pub fn routes() -> Router {
    SwaggerUi::new("/swagger-ui")
        .url("/openapi.json", ApiDoc::openapi())
        .into()
}
