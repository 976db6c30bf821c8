//! payment-service: consumes `OrderCreated` events, applies each payment exactly once,
//! and reports the outcome back (docs/en/04-consume.md).

mod app;
mod config;

pub use app::App;
pub use config::{Config, DEFAULTS};
