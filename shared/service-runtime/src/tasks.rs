//! The background loops of a service (relay, consumers), joined at shutdown.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;

/// How long shutdown waits, in all, for the loops to finish their work in hand.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct BackgroundTasks {
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl BackgroundTasks {
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push((name, tokio::spawn(task)));
    }

    /// Waits for every loop (each stops on the shared `Shutdown`), all of them within one
    /// deadline, so a service's stop is bounded however many loops it runs.
    pub async fn join(self) {
        let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
        for (name, handle) in self.tasks {
            match tokio::time::timeout_at(deadline, handle).await {
                Ok(Ok(())) => tracing::debug!(task = name, "stopped"),
                Ok(Err(e)) => tracing::error!(task = name, error = %e, "task panicked"),
                Err(_) => tracing::error!(
                    task = name,
                    "did not stop within {JOIN_TIMEOUT:?}; left running"
                ),
            }
        }
    }
}
