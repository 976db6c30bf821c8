//! Stopping a service that a test started with `tokio::spawn(app.run_until_stopped())`.

use std::time::Duration;

use tokio::task::JoinHandle;

/// Holds the service's shutdown switch and its task; `stop` flips the switch and waits
/// (bounded) for the graceful shutdown to finish.
#[derive(Debug)]
pub struct StopHandle {
    switch: lifecycle::Shutdown,
    task: JoinHandle<Result<(), Vec<lifecycle::TaskFailure>>>,
}

impl StopHandle {
    pub fn new(
        switch: lifecycle::Shutdown,
        task: JoinHandle<Result<(), Vec<lifecycle::TaskFailure>>>,
    ) -> Self {
        Self { switch, task }
    }

    /// For one loop a test spawned itself (a consumer, a relay), not a whole service.
    pub fn for_loop(switch: lifecycle::Shutdown, task: JoinHandle<()>) -> Self {
        let task = tokio::spawn(async move {
            task.await.expect("the loop ran to its end");
            Ok(())
        });
        Self::new(switch, task)
    }

    /// The bound is above the service's own (30 s for its loops, then the pool), so a
    /// slow loop shows as the service's "did not stop" error, not as this timeout. A
    /// background loop that ended before the stop fails the test.
    pub async fn stop(self) {
        self.switch.trigger();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("service stops within 60s of its shutdown switch")
            .expect("service task")
            .expect("no background loop of the service ended before its stop");
    }
}
