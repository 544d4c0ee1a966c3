//! Exponential backoff with jitter, shared by job retries and webhook deliveries.

use std::time::Duration;

/// Delays that double per attempt from `base`, each multiplied by a random
/// factor in [0.5, 1.5) so that many jobs failing together (a database
/// restart) do not all come back at the same moment, and capped at `max`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay after the `attempt`-th failure (1 for the first).
    pub fn delay(&self, attempt: i32) -> Duration {
        let doublings = attempt.clamp(1, 31) as u32 - 1;
        let exp = self.base.saturating_mul(1u32 << doublings.min(20)).min(self.max);
        exp.mul_f64(0.5 + fastrand::f64()).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_and_is_capped() {
        let backoff = Backoff { base: Duration::from_secs(10), max: Duration::from_secs(600) };
        for attempt in 1..=40 {
            let expected = (backoff.base * (1 << (attempt - 1).min(20))).min(backoff.max);
            let d = backoff.delay(attempt);
            assert!(d >= expected.mul_f64(0.5) && d < expected.mul_f64(1.5), "attempt {attempt}: {d:?}");
            assert!(d <= backoff.max, "attempt {attempt}: {d:?} over the cap");
        }
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let backoff = Backoff { base: Duration::from_secs(1), max: Duration::from_secs(60) };
        let delays: std::collections::BTreeSet<_> = (0..50).map(|_| backoff.delay(3)).collect();
        assert!(delays.len() > 40, "50 delays should hardly ever coincide: {} distinct", delays.len());
        let mean = delays.iter().map(Duration::as_secs_f64).sum::<f64>() / delays.len() as f64;
        assert!((3.0..5.0).contains(&mean), "mean of 4 s ×[0.5, 1.5) was {mean}");
    }
}
