//! The wire format of the events payment-service consumes and publishes. This service
//! owns its view of `OrderCreated`: it reads only the fields it needs and rejects a
//! schema version it does not know (a permanent error: dead-lettered, not guessed at).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const ORDER_CREATED: &str = "OrderCreated";
pub const PAYMENT_SUCCEEDED: &str = "PaymentSucceeded";
pub const PAYMENT_FAILED: &str = "PaymentFailed";
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Deserialize)]
pub struct OrderCreated {
    pub schema_version: u32,
    pub order_id: Uuid,
    pub amount_minor: i64,
    pub currency: String,
    /// When the order was accepted; read only for `order_to_payment_seconds`, so an
    /// event without it is still paid.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
}

/// Published (through this service's outbox) once a payment is decided.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentOutcome {
    pub schema_version: u32,
    pub order_id: Uuid,
    pub payment_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
