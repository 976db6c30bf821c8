//! order-service: accepts orders over HTTP and hands their events to Kafka through a
//! transactional outbox (docs/en/02-produce.md), then follows each order to its
//! payment outcome (docs/en/04-consume.md).
//!
//! - `api/`            HTTP: create, read, list orders (problem+json errors)
//! - `direct_publish/` `PUBLISH_MODE=direct`: send log, send with ack, re-push job
//! - `events.rs`       the events this service publishes and consumes (wire format)
//! - `payment_results` the consumer that moves an order to PAID / PAYMENT_FAILED
//! - `app.rs`          wiring: database, relay, consumer, HTTP server

mod api;
mod app;
mod config;
pub mod direct_publish;
pub mod events;
mod payment_results;

pub use api::ApiDoc;
/// Public for tests and drills: they drive the purge one pass at a time.
pub use api::idempotency;
pub use app::App;
pub use config::{Config, DEFAULTS, PublishMode};
pub use payment_results::PaymentResults;
