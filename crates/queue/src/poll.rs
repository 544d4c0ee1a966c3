use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{PollSnapshot, PollStrategy};
use tokio::time::Sleep;

/// Wakes an idle worker every `interval` to look for new jobs.
///
/// apalis 1.0.0's `IntervalStrategy` replaces a fired timer with a new one
/// without polling it, so no wake-up is registered: after a tick that finds
/// the queue empty, the worker sleeps until its next heartbeat (seconds). We
/// measured queue waits of 2–4.5 s every few seconds because of it. This
/// strategy always leaves a timer armed with the caller's waker.
#[derive(Debug)]
pub struct TickStrategy {
    interval: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl TickStrategy {
    pub fn new(interval: Duration) -> Self {
        Self { interval, timer: None }
    }
}

impl Clone for TickStrategy {
    fn clone(&self) -> Self {
        Self::new(self.interval)
    }
}

impl PollStrategy for TickStrategy {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _snapshot: &PollSnapshot) -> Poll<Option<()>> {
        let interval = self.interval;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(interval)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let mut next = Box::pin(tokio::time::sleep(interval));
        // Polling registers `cx`'s waker for the next tick; a fresh timer is never ready.
        let _ = next.as_mut().poll(cx);
        self.timer = Some(next);
        Poll::Ready(Some(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_tick_wakes_the_worker_without_another_poll() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let snapshot = PollSnapshot::default();
        let mut strategy = TickStrategy::new(Duration::from_millis(100));

        assert!(strategy.poll_drive(&mut cx, &snapshot).is_pending());
        tokio::time::sleep(Duration::from_millis(101)).await;
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "first tick wakes");
        assert!(strategy.poll_drive(&mut cx, &snapshot).is_ready());
        // The worker now finds the queue empty and waits, polling nothing.
        tokio::time::sleep(Duration::from_millis(101)).await;
        assert_eq!(counter.0.load(Ordering::SeqCst), 2, "the next tick must wake it too");
        assert!(strategy.poll_drive(&mut cx, &snapshot).is_ready());
    }
}
