//! A simulated payment provider: the external side effect that cannot join our
//! database transaction (docs/en/06-idempotency.md).
//!
//! Real providers (Stripe, Adyen, ...) accept an idempotency key and answer a repeated
//! request with the first answer. This one does the same, keyed by the order id, with
//! its records in its own table written *outside* the consumer's transaction — so if
//! the consumer crashes after the charge but before its commit, the redelivered
//! message charges again with the same key and gets the same answer: one charge.
//!
//! Behaviour for demonstrations:
//! - `PROVIDER_LATENCY_MS` adds latency to every call;
//! - `PROVIDER_FAILURE_RATE` makes that share of calls fail as "unavailable"
//!   (transient: the consumer retries with backoff);
//! - declines are deterministic: an amount whose minor units end in `13` (e.g. 10.13)
//!   is declined, so a test or a k6 script can ask for a failed payment.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, Default)]
pub struct ProviderSettings {
    pub latency: Duration,
    pub failure_rate: f64,
    /// `DEDUP_PROVIDER_KEY=false`, an unsafe teaching toggle: the caller sends no
    /// idempotency key, so every call is a new charge (the provider's own dedup, the
    /// last layer before the money, is off).
    pub without_idempotency_key: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    Approved,
    Declined(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("payment provider unavailable (simulated)")]
    Unavailable,
    #[error("payment provider storage: {0}")]
    Storage(#[from] sqlx::Error),
}

#[derive(Debug, Clone)]
pub struct PaymentProvider {
    pool: PgPool,
    settings: ProviderSettings,
}

impl PaymentProvider {
    pub fn new(pool: PgPool, settings: ProviderSettings) -> Self {
        Self { pool, settings }
    }

    /// Charges `amount_minor` for `order_id` once per idempotency key (the order id); a
    /// repeat returns the first result. Without the key (the unsafe toggle) each call
    /// charges again.
    pub async fn charge(
        &self,
        order_id: Uuid,
        amount_minor: i64,
        currency: &str,
    ) -> Result<Charge, ProviderError> {
        if !self.settings.latency.is_zero() {
            tokio::time::sleep(self.settings.latency).await;
        }
        if self.settings.failure_rate > 0.0 && fastrand::f64() < self.settings.failure_rate {
            return Err(ProviderError::Unavailable);
        }
        let (outcome, reason) = if amount_minor % 100 == 13 {
            (
                "DECLINED",
                Some("card declined (test rule: amount ending in 13)"),
            )
        } else {
            ("APPROVED", None)
        };
        // No key sent: the provider makes up one of its own for each call.
        let idempotency_key = if self.settings.without_idempotency_key {
            Uuid::now_v7()
        } else {
            order_id
        };
        // Its own autocommit statement on the pool: the provider is not part of the
        // consumer's transaction. ON CONFLICT returns the first answer for the key.
        let row = sqlx::query!(
            r#"INSERT INTO provider_charges (idempotency_key, order_id, amount_minor, currency, outcome, reason)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (idempotency_key) DO UPDATE SET calls = provider_charges.calls + 1
               RETURNING outcome, reason"#,
            idempotency_key.to_string(),
            order_id,
            amount_minor,
            currency,
            outcome,
            reason,
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(match row.outcome.as_str() {
            "APPROVED" => Charge::Approved,
            _ => Charge::Declined(row.reason.unwrap_or_default()),
        })
    }
}
