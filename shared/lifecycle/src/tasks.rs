//! The background loops of a service (relay, consumers, purges), supervised and joined
//! at shutdown.
//!
//! Each loop is meant to run until shutdown. One that ends before it, or panics, leaves
//! a service that looks alive: it would keep accepting orders its dead relay never
//! publishes, or keep a partition its dead consumer never reads. So the supervisor
//! treats an early end as fatal: it logs it, triggers the service's shutdown (the HTTP
//! server stops taking requests, `/readyz` stops answering) and [`BackgroundTasks::join`]
//! reports it, so `main` exits with a failure and whatever restarts the process does.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::Shutdown;

/// How long shutdown waits, in all, for the loops to finish their work in hand.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A background loop that ended before shutdown: its name and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    pub task: &'static str,
    pub how: String,
}

impl std::fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "background task {:?} {}", self.task, self.how)
    }
}

#[derive(Debug)]
pub struct BackgroundTasks {
    shutdown: Shutdown,
    failures: Arc<Mutex<Vec<TaskFailure>>>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl BackgroundTasks {
    /// Loops stopped by `shutdown`, which an early end of any of them triggers.
    pub fn new(shutdown: Shutdown) -> Self {
        Self {
            shutdown,
            failures: Arc::default(),
            tasks: Vec::new(),
        }
    }

    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let loop_handle = tokio::spawn(task);
        let shutdown = self.shutdown.clone();
        let failures = Arc::clone(&self.failures);
        let supervisor = tokio::spawn(async move {
            let how = match loop_handle.await {
                Ok(()) if shutdown.is_triggered() => return,
                Ok(()) => "ended before shutdown".to_owned(),
                Err(error) if error.is_panic() => format!("panicked: {}", panic_text(error)),
                Err(error) => format!("was cancelled: {error}"),
            };
            let failure = TaskFailure { task: name, how };
            tracing::error!(%failure, "a background loop is gone: stopping the service");
            failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(failure);
            shutdown.trigger();
        });
        self.tasks.push((name, supervisor));
    }

    /// Waits for every loop (each stops on the shared `Shutdown`), all of them within one
    /// deadline, so a service's stop is bounded however many loops it runs. `Err` lists
    /// the loops that ended before shutdown.
    pub async fn join(self) -> Result<(), Vec<TaskFailure>> {
        let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
        for (name, handle) in self.tasks {
            match tokio::time::timeout_at(deadline, handle).await {
                Ok(_) => tracing::debug!(task = name, "stopped"),
                Err(_) => tracing::error!(
                    task = name,
                    "did not stop within {JOIN_TIMEOUT:?}; left running"
                ),
            }
        }
        let failures =
            std::mem::take(&mut *self.failures.lock().unwrap_or_else(|e| e.into_inner()));
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }
}

fn panic_text(error: tokio::task::JoinError) -> String {
    let payload = error.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_loop_that_panics_stops_the_service_and_is_reported() {
        let shutdown = Shutdown::default();
        let mut tasks = BackgroundTasks::new(shutdown.clone());
        let stop = shutdown.clone();
        tasks.spawn("healthy loop", async move { stop.wait().await });
        tasks.spawn("outbox relay", async {
            panic!("lost its database for good")
        });
        tokio::time::timeout(Duration::from_secs(5), shutdown.wait())
            .await
            .expect("the panic triggers shutdown");
        let failures = tasks.join().await.expect_err("the panic is reported");
        assert_eq!(
            failures,
            [TaskFailure {
                task: "outbox relay",
                how: "panicked: lost its database for good".to_owned()
            }]
        );
    }

    #[tokio::test]
    async fn a_loop_that_returns_early_stops_the_service_too() {
        let shutdown = Shutdown::default();
        let mut tasks = BackgroundTasks::new(shutdown.clone());
        tasks.spawn("consumer", async {});
        tokio::time::timeout(Duration::from_secs(5), shutdown.wait())
            .await
            .expect("the early end triggers shutdown");
        let failures = tasks.join().await.expect_err("reported");
        assert_eq!(failures[0].how, "ended before shutdown");
    }

    #[tokio::test]
    async fn loops_that_stop_on_shutdown_are_no_failure() {
        let shutdown = Shutdown::default();
        let mut tasks = BackgroundTasks::new(shutdown.clone());
        for name in ["relay", "consumer"] {
            let stop = shutdown.clone();
            tasks.spawn(name, async move { stop.wait().await });
        }
        shutdown.trigger();
        assert_eq!(tasks.join().await, Ok(()));
    }
}
