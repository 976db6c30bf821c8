//! The wire format of the events order-service publishes and consumes. Each service
//! owns its view of the contract; the schema version lets a consumer reject what it
//! does not understand instead of misreading it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const ORDER_CREATED: &str = "OrderCreated";
pub const PAYMENT_SUCCEEDED: &str = "PaymentSucceeded";
pub const PAYMENT_FAILED: &str = "PaymentFailed";
pub const SCHEMA_VERSION: u32 = 1;

/// Published (through the outbox) when an order is accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderCreated {
    pub schema_version: u32,
    pub event_id: Uuid,
    pub order_id: Uuid,
    pub customer_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

/// Consumed: payment-service's outcome for an order (both event types share it).
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentOutcome {
    pub schema_version: u32,
    pub order_id: Uuid,
    pub payment_id: Uuid,
    #[serde(default)]
    pub reason: Option<String>,
}
