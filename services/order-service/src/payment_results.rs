//! Consuming payment outcomes: `PENDING_PAYMENT → PAID | PAYMENT_FAILED`, exactly once.
//!
//! Two guards make a repeated or late event harmless:
//! - the inbox (`inbox::record_delivery`) skips an event id already applied;
//! - the state machine only moves an order *out of* `PENDING_PAYMENT`: an outcome for
//!   an order already PAID or PAYMENT_FAILED changes nothing, so a stale event can
//!   never move an order back.

use message_consumer::{DedupLayer, EventHeaders, HandleError, Handled, Handler, ReceivedMessage};
use sqlx::PgPool;

use crate::events::{PAYMENT_FAILED, PAYMENT_SUCCEEDED, PaymentOutcome, SCHEMA_VERSION};

/// The handler for `payment-events`.
#[derive(Debug, Clone)]
pub struct PaymentResults {
    pub pool: PgPool,
    pub consumer_group: String,
}

impl Handler for PaymentResults {
    async fn handle(&self, message: &ReceivedMessage) -> Result<Handled, HandleError> {
        let event_id = message.event_id()?;
        let new_status = match message.event_type() {
            Some(PAYMENT_SUCCEEDED) => "PAID",
            Some(PAYMENT_FAILED) => "PAYMENT_FAILED",
            other => {
                return Err(HandleError::Permanent(format!(
                    "unexpected event-type {other:?}"
                )));
            }
        };
        let payload = message.payload.as_deref().unwrap_or_default();
        let outcome: PaymentOutcome = serde_json::from_slice(payload)
            .map_err(|e| HandleError::Permanent(format!("malformed payment outcome: {e}")))?;
        if outcome.schema_version != SCHEMA_VERSION {
            return Err(HandleError::Permanent(format!(
                "unknown schema_version {} (this service reads {SCHEMA_VERSION})",
                outcome.schema_version
            )));
        }
        validate_reason(outcome.reason.as_deref())?;

        let first =
            inbox::begin_first_delivery(&self.pool, &self.consumer_group, event_id, message.into())
                .await
                .map_err(database)?;
        let Some(mut tx) = first else {
            tracing::info!(%event_id, order_id = %outcome.order_id, "duplicate payment outcome suppressed by the inbox");
            return Ok(Handled::Duplicate(DedupLayer::Inbox));
        };
        let moved = sqlx::query!(
            r#"UPDATE orders
                  SET status = $2, payment_event_id = $3, payment_reason = $4, updated_at = now()
                WHERE id = $1 AND status = 'PENDING_PAYMENT'"#,
            outcome.order_id,
            new_status,
            event_id,
            outcome.reason,
        )
        .execute(&mut *tx)
        .await
        .map_err(database)?;
        if moved.rows_affected() == 0 {
            let exists =
                sqlx::query_scalar!("SELECT status FROM orders WHERE id = $1", outcome.order_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(database)?;
            match exists {
                None => {
                    return Err(HandleError::Permanent(format!(
                        "no order {}",
                        outcome.order_id
                    )));
                }
                Some(status) => {
                    tracing::info!(
                        order_id = %outcome.order_id, %status, ignored = new_status,
                        "order already settled; outcome ignored by the state machine"
                    );
                    // The inbox row stays (this event id is now known); the order is
                    // the business key, and it already has its outcome.
                    tx.commit().await.map_err(database)?;
                    return Ok(Handled::Duplicate(DedupLayer::BusinessKey));
                }
            }
        }
        tx.commit().await.map_err(database)?;
        // Inside the message's `process` span: the line carries the order's trace id.
        tracing::info!(%event_id, order_id = %outcome.order_id, status = new_status, "order settled");
        Ok(Handled::Applied)
    }
}

/// The decline reason is stored as text: Postgres refuses a `\u0000` in it (SQLSTATE
/// 22P05), so it is refused here, at decode, with a reason, like any malformed field.
fn validate_reason(reason: Option<&str>) -> Result<(), HandleError> {
    match reason {
        Some(r) if r.contains('\0') => Err(HandleError::Permanent(
            "malformed payment outcome: reason contains a NUL character".to_owned(),
        )),
        Some(r) if r.len() > MAX_REASON_BYTES => Err(HandleError::Permanent(format!(
            "malformed payment outcome: reason longer than {MAX_REASON_BYTES} bytes"
        ))),
        _ => Ok(()),
    }
}

const MAX_REASON_BYTES: usize = 1_000;

/// A database error: unreachable (waited out), refused data (dead-lettered) or other
/// (retried up to the cap); `message_consumer::database_error` reads the SQLSTATE.
fn database(e: sqlx::Error) -> HandleError {
    message_consumer::database_error("orders database", &e)
}
