//! Retry delays: capped exponential backoff with jitter.
//!
//! The n-th failed attempt waits about `base · 2^(n-1)`, never more than `max`. Half of that is
//! fixed and half random ("equal jitter"): the random half spreads retries of tasks that failed
//! together (an API outage) so they do not return as one wave, and the fixed half guarantees the
//! wait grows, which full jitter (anything from zero) would not.

use std::time::Duration;

/// A backoff schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure (before jitter).
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The ceiling of the wait after `failures` failed attempts (1 = the first failure).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(32);
        self.base
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max)
    }

    /// The wait after `failures` failed attempts: between half the ceiling and the ceiling.
    pub fn delay(&self, failures: u32) -> Duration {
        let ceiling = self.ceiling(failures);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(10),
    };

    #[test]
    fn the_ceiling_doubles_then_stops_at_the_cap() {
        let ms = |n| B.ceiling(n).as_millis();
        assert_eq!([ms(1), ms(2), ms(3), ms(4)], [100, 200, 400, 800]);
        assert_eq!(ms(8), 10_000);
        assert_eq!(ms(u32::MAX), 10_000);
    }

    #[test]
    fn the_delay_lies_between_half_the_ceiling_and_the_ceiling() {
        for n in 1..20 {
            for _ in 0..50 {
                let d = B.delay(n);
                assert!(d >= B.ceiling(n) / 2 && d <= B.ceiling(n), "{n}: {d:?}");
            }
        }
    }
}
