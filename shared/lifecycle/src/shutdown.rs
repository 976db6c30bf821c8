//! Graceful shutdown: stop taking work, finish what is in flight, then exit.

use tokio::sync::watch;

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received: finishing in-flight work");
}

/// A shutdown switch shared by the HTTP server and the background loops of a service.
/// `trigger` flips it once; every `wait` then resolves.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            tx: watch::Sender::new(false),
        }
    }
}

impl Shutdown {
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once `trigger` has been called.
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        // An error means the sender is gone, which only happens at drop: treat as shutdown.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }

    /// Sleeps for `period` unless shutdown comes first. Returns `true` when the sleep
    /// ran out (go on), `false` on shutdown (stop): the pause of every background loop,
    /// instead of a hand-written `select!` on the two.
    pub async fn sleep(&self, period: std::time::Duration) -> bool {
        tokio::select! {
            () = self.wait() => false,
            () = tokio::time::sleep(period) => !self.is_triggered(),
        }
    }
}
