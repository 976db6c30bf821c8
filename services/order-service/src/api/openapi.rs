//! The API described as an OpenAPI 3.1 document, generated from the handlers' own
//! `#[utoipa::path]` attributes and the request/response types, so it cannot drift from
//! the code: `GET /openapi.json`, and Swagger UI at `/swagger-ui/` to try it.

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::create_order::{__path_create_order, CreateOrder};
use super::error::{FieldError, ProblemDetails};
use super::order_view::{OrderSummary, OrderView, TimelineEntry};
use super::read_orders::{__path_get_order, __path_list_orders};

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

/// `GET /openapi.json` and Swagger UI (`/swagger-ui/`), whose assets are compiled in.
pub fn routes() -> Router {
    SwaggerUi::new("/swagger-ui")
        .url("/openapi.json", ApiDoc::openapi())
        .into()
}
