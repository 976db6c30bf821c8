//! One backoff for every retry loop of the project: a failing database under the relay,
//! a send that will be retried, a message whose handler failed for a moment.

use std::time::Duration;

/// The first retry's wait; each later one doubles it.
const FIRST: Duration = Duration::from_millis(100);

/// Retry `attempt` (1, 2, 3, ...) waits 100 ms, 200 ms, 400 ms ..., never more than
/// `cap`. Doubling spaces the retries of a long outage out, and the cap keeps the wait
/// after it ends short.
pub fn backoff(attempt: u32, cap: Duration) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    FIRST.saturating_mul(1 << exponent).min(cap)
}

/// `delay` scaled by a random factor in [0.5, 1.5): consumers or relays that failed
/// together (a broker went away under all of them) do not retry together.
pub fn with_jitter(delay: Duration) -> Duration {
    delay.mul_f64(0.5 + fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_100_ms_up_to_the_cap() {
        let cap = Duration::from_secs(10);
        let waits: Vec<u128> = (1..=9).map(|a| backoff(a, cap).as_millis()).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
        );
        assert_eq!(backoff(0, cap), Duration::from_millis(100));
        assert_eq!(backoff(u32::MAX, cap), cap);
    }

    #[test]
    fn jitter_stays_within_half_either_side() {
        for _ in 0..1000 {
            let wait = with_jitter(Duration::from_millis(1000)).as_millis();
            assert!((500..1500).contains(&wait), "{wait}");
        }
    }
}
