//! A token bucket per API key (per api instance): `rate` requests a second,
//! up to `burst` at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<Uuid, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `None` when `rate` is 0 (no limit).
    pub fn new(rate: f64, burst: Option<f64>) -> Option<Self> {
        (rate > 0.0).then(|| Self { rate, burst: burst.unwrap_or(rate).max(1.0), buckets: Mutex::default() })
    }

    /// Takes a token for `key`, or says how long until one is free.
    pub fn take(&self, key: Uuid, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: self.burst, at: now });
        let refilled = now.saturating_duration_since(bucket.at).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + refilled).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_its_rate() {
        let limiter = RateLimiter::new(2.0, Some(3.0)).unwrap();
        let (a, b, t0) = (Uuid::new_v4(), Uuid::new_v4(), Instant::now());
        for _ in 0..3 {
            assert!(limiter.take(a, t0).is_ok());
        }
        let wait = limiter.take(a, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // Another key has its own bucket; half a second refills one token.
        assert!(limiter.take(b, t0).is_ok());
        assert!(limiter.take(a, t0 + Duration::from_millis(500)).is_ok());
        assert!(limiter.take(a, t0 + Duration::from_millis(500)).is_err());
        assert!(RateLimiter::new(0.0, None).is_none());
    }
}
