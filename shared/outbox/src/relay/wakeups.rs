//! How a relay learns of new rows: `LISTEN outbox_new` (the trigger notifies as each
//! outbox row commits), forwarded as a wake-up to the lead lane or the streaming
//! claimer. The poll timer of those loops is the fallback while the listener is down.

use std::sync::Arc;

use lifecycle::Shutdown;
use sqlx::postgres::PgListener;

use super::{DATABASE_BACKOFF_CAP, Relay, Signals};

impl Relay {
    /// Turns each `outbox_new` notification into a wake-up of the lead lane. If it is in
    /// a pass, the wake-up is kept (not lost) and its next wait ends at once. A broken
    /// listener is reconnected with a backoff; meanwhile the lead lane polls.
    pub(super) async fn forward_notifications(self, signals: Arc<Signals>, shutdown: Shutdown) {
        let mut failures: u32 = 0;
        while !shutdown.is_triggered() {
            if let Some(mut listener) = self.listen().await {
                failures = 0;
                loop {
                    tokio::select! {
                        () = shutdown.wait() => return,
                        received = listener.recv() => match received {
                            Ok(_) => signals.new_rows.notify_one(),
                            Err(error) => {
                                tracing::warn!(%error, "LISTEN outbox_new broke; polling until it is back");
                                break;
                            }
                        },
                    }
                }
            }
            failures = failures.saturating_add(1);
            if !shutdown
                .sleep(lifecycle::backoff(failures, DATABASE_BACKOFF_CAP))
                .await
            {
                return;
            }
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.ok()?;
        listener.listen("outbox_new").await.ok()?;
        Some(listener)
    }
}
