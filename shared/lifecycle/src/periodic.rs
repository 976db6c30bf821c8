//! The periodic loop every service runs a few of (gauges, purges, checks): one step,
//! then a pause that shutdown cuts short.

use std::future::Future;
use std::time::Duration;

use crate::Shutdown;

/// Runs `step` at once and then every `period` until `shutdown`. A step in progress is
/// finished, never cut off: a purge stops between its statements, not in one.
pub async fn every<F, Fut>(period: Duration, shutdown: &Shutdown, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    while !shutdown.is_triggered() {
        step().await;
        if !shutdown.sleep(period).await {
            return;
        }
    }
}

/// How often a purge runs for a given retention: a tenth of it, and never less often
/// than `at_most`. A table then holds between one retention and 1.1 retentions of rows,
/// whether the retention is a week (deployments) or minutes (the soak).
pub fn purge_interval(retention: Duration, at_most: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), at_most)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn a_purge_runs_every_tenth_of_the_retention_up_to_a_bound() {
        let hour = Duration::from_secs(3600);
        let five_minutes = Duration::from_secs(300);
        assert_eq!(purge_interval(168 * hour, five_minutes), five_minutes);
        assert_eq!(purge_interval(168 * hour, hour), hour);
        assert_eq!(purge_interval(hour / 4, hour), Duration::from_secs(90));
        assert_eq!(
            purge_interval(Duration::from_secs(5), hour),
            Duration::from_secs(1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn steps_at_once_then_every_period_and_stops_on_shutdown() {
        let shutdown = Shutdown::default();
        let steps = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&steps);
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            every(Duration::from_secs(10), &stop, || {
                let counted = Arc::clone(&counted);
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            })
            .await;
        });
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(steps.load(Ordering::SeqCst), 3, "at 0 s, 10 s and 20 s");
        shutdown.trigger();
        task.await.expect("the loop ends on shutdown");
        assert_eq!(steps.load(Ordering::SeqCst), 3);
    }
}
