use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{PollSnapshot, PollStrategy};
use futures::StreamExt;
use futures::task::AtomicWaker;
use tokio::time::Sleep;

/// Wakes a worker to look for new jobs: at once when a push is announced
/// (see [`PushSignal`]), and otherwise every `interval`, which catches what no
/// push announces (retries coming due, pushes onto a queue where others were
/// already waiting, pushes missed while the listener reconnects).
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
    pushes: Option<PushSignal>,
}

impl TickStrategy {
    pub fn new(interval: Duration) -> Self {
        Self { interval, timer: None, pushes: None }
    }

    /// Also wakes when `pushes` is raised.
    pub fn with_pushes(interval: Duration, pushes: PushSignal) -> Self {
        Self { pushes: Some(pushes), ..Self::new(interval) }
    }

    /// A fresh timer firing after `after`, polled once so that it wakes `cx`.
    fn arm(&mut self, cx: &mut Context<'_>, after: Duration) {
        let mut next = Box::pin(tokio::time::sleep(after));
        // A fresh timer is never ready.
        let _ = next.as_mut().poll(cx);
        self.timer = Some(next);
    }
}

impl Clone for TickStrategy {
    fn clone(&self) -> Self {
        Self { pushes: self.pushes.clone(), ..Self::new(self.interval) }
    }
}

impl PollStrategy for TickStrategy {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _snapshot: &PollSnapshot) -> Poll<Option<()>> {
        if let Some(pushes) = &self.pushes
            && pushes.take(cx)
        {
            // Look again shortly: this wake-up may only drive a fetch that
            // began before the push, and would find nothing.
            self.arm(cx, PUSH_FOLLOW_UP);
            return Poll::Ready(Some(()));
        }
        let interval = self.interval;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(interval)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.arm(cx, self.interval);
        Poll::Ready(Some(()))
    }
}

/// After a push wakes a worker, it looks once more this soon.
const PUSH_FOLLOW_UP: Duration = Duration::from_millis(20);

/// Raised when a job is pushed to the queue: `JobQueue::enqueue` announces a
/// push on the queue's `pushed` channel when a consumer may be idle (not
/// while due messages wait: see `announce.rs`), and [`PushSignal::listen`]
/// hears it. An idle worker then looks at once instead of at its next tick,
/// so its tick can be slow and cheap: polling Redis every 25 ms was most of
/// an idle worker's CPU.
#[derive(Clone, Debug, Default)]
pub struct PushSignal(Arc<Signal>);

#[derive(Debug, Default)]
struct Signal {
    raised: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        self.waker.wake();
    }
}

impl PushSignal {
    /// Whether a push was heard since the last call; `cx` is woken by the next one.
    fn take(&self, cx: &mut Context<'_>) -> bool {
        self.0.waker.register(cx.waker());
        self.0.raised.swap(false, Ordering::AcqRel)
    }

    /// Raises a new signal for every message on `channel`, reconnecting
    /// after Redis restarts, until the signal has no other holder.
    pub fn listen(client: redis::Client, channel: String) -> Self {
        let signal = Self::default();
        tokio::spawn(listen(client, channel, Arc::downgrade(&signal.0)));
        signal
    }
}

async fn listen(client: redis::Client, channel: String, signal: Weak<Signal>) {
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    let mut messages = pubsub.on_message();
                    // Whatever was pushed while nobody listened: look once.
                    let mut heard = true;
                    while heard {
                        // Held only to raise: a signal nobody holds ends the task.
                        let Some(signal) = signal.upgrade() else { return };
                        signal.raise();
                        drop(signal);
                        heard = messages.next().await.is_some();
                    }
                    tracing::debug!(%channel, "push notifications ended; reconnecting");
                }
                Err(e) => tracing::debug!(%channel, error = %e, "cannot subscribe to push notifications"),
            },
            Err(e) => tracing::debug!(error = %e, "cannot connect for push notifications"),
        }
        if signal.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
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

    /// Waits (real time, up to 5 s) until `waker` has been woken `n` times.
    /// Real time, not tokio's paused clock: its `test-util` feature, as a
    /// dev-dependency, would have the whole tokio stack compiled twice.
    async fn woken(waker: &CountingWaker, n: usize) -> usize {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while waker.0.load(Ordering::SeqCst) < n && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        waker.0.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn every_tick_wakes_the_worker_without_another_poll() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let snapshot = PollSnapshot::default();
        let mut strategy = TickStrategy::new(Duration::from_millis(100));

        assert!(strategy.poll_drive(&mut cx, &snapshot).is_pending());
        assert_eq!(woken(&counter, 1).await, 1, "first tick wakes");
        assert!(strategy.poll_drive(&mut cx, &snapshot).is_ready());
        // The worker now finds the queue empty and waits, polling nothing.
        assert_eq!(woken(&counter, 2).await, 2, "the next tick must wake it too");
        assert!(strategy.poll_drive(&mut cx, &snapshot).is_ready());
    }

    #[tokio::test]
    async fn a_push_wakes_the_worker_before_its_tick() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let snapshot = PollSnapshot::default();
        let pushes = PushSignal::default();
        let tick = Duration::from_secs(1);
        let mut strategy = TickStrategy::with_pushes(tick, pushes.clone());
        let started = std::time::Instant::now();

        assert!(strategy.poll_drive(&mut cx, &snapshot).is_pending());
        pushes.0.raise();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "the push wakes the worker");
        assert!(strategy.poll_drive(&mut cx, &snapshot).is_ready());
        assert!(strategy.poll_drive(&mut cx, &snapshot).is_pending(), "one push, one wake");
        assert_eq!(woken(&counter, 2).await, 2, "and one look soon after it");
        assert!(started.elapsed() < tick, "the look after a push comes before the tick");
        assert!(strategy.poll_drive(&mut cx, &snapshot).is_ready());
        assert_eq!(woken(&counter, 3).await, 3, "then the tick wakes it");
        assert!(started.elapsed() >= tick, "not before the tick");
    }
}
