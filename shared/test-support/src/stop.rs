//! Stopping a service that a test started with `tokio::spawn(app.run_until_stopped())`.

use std::time::Duration;

use tokio::task::JoinHandle;

/// Holds the service's shutdown switch and its task; `stop` flips the switch and waits
/// (bounded) for the graceful shutdown to finish.
#[derive(Debug)]
pub struct StopHandle {
    switch: service_runtime::Shutdown,
    task: JoinHandle<()>,
}

impl StopHandle {
    pub fn new(switch: service_runtime::Shutdown, task: JoinHandle<()>) -> Self {
        Self { switch, task }
    }

    /// The bound is above the service's own (30 s for its loops, then the pool), so a
    /// slow loop shows as the service's "did not stop" error, not as this timeout.
    pub async fn stop(self) {
        self.switch.trigger();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("service stops within 60s of its shutdown switch")
            .expect("service task");
    }
}
