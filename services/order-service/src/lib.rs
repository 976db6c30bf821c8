//! order-service: accepts orders over HTTP and hands their events to Kafka through a
//! transactional outbox (docs/en/02-produce.md).

mod app;
mod config;

pub use app::App;
pub use config::{Config, DEFAULTS};
