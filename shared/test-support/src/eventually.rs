//! Bounded waiting. A test that waits for a background loop polls a condition until
//! it holds or the bound passes, then fails with the last thing it saw.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

/// Polls `probe` every 100 ms for up to 30 s until it returns `Ok`.
pub async fn eventually<T, E, F, Fut>(what: &str, probe: F) -> T
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    eventually_with(
        what,
        Duration::from_secs(30),
        Duration::from_millis(100),
        probe,
    )
    .await
}

/// Polls `probe` every `every` until it returns `Ok` or `within` has passed; then
/// panics with `what` and the last error.
pub async fn eventually_with<T, E, F, Fut>(
    what: &str,
    within: Duration,
    every: Duration,
    mut probe: F,
) -> T
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if tokio::time::Instant::now() >= deadline => {
                panic!("{what}: still not true after {within:?}; last: {last:?}")
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}
