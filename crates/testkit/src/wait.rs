//! Waiting for a condition with a deadline, instead of sleeping and hoping:
//! a test goes on the moment what it waits for has happened, and fails
//! saying what it waited for when it does not happen in time.

use std::future::Future;
use std::time::{Duration, Instant};

/// Checks every 100 ms until `check` holds; panics after `timeout`, saying
/// `describe()` (evaluated then, so it can show a process's output so far).
pub async fn wait_until<F: Future<Output = bool>>(
    timeout: Duration,
    describe: impl Fn() -> String,
    check: impl FnMut() -> F,
) {
    wait_every(timeout, Duration::from_millis(100), describe, check).await
}

/// As [`wait_until`], checking every `interval`.
pub(crate) async fn wait_every<F: Future<Output = bool>>(
    timeout: Duration,
    interval: Duration,
    describe: impl Fn() -> String,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {}", describe());
        tokio::time::sleep(interval).await;
    }
}
