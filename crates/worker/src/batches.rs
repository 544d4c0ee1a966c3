//! Archive batches, from the worker's side: items are fed into the job queue
//! as room frees (a window of queued batch jobs, so single submissions keep
//! their room), and a batch ends once its last item has. Every worker runs
//! this loop; the store takes items with `SKIP LOCKED`, so they never collide.
//! While no batch runs the loop sleeps on PostgreSQL's announcement of new
//! batches, looking only every tenth tick. A tick is one round trip to
//! PostgreSQL; it looks for ended batches too only when some running batch
//! has nothing left to feed (no other can have ended).

use std::sync::Arc;
use std::time::Duration;

use facerec_queue::JobQueue;
use facerec_store::{BatchListener, FeedRound, Store};
use tracing::{debug, info, warn};

use crate::Settings;

/// With no batch running, the feeder looks this many times less often: a new
/// batch is announced the moment it is recorded, and the slow look is a
/// backstop for announcements missed while the listener reconnected.
const IDLE_SLOWDOWN: u32 = 10;

pub(crate) async fn batch_loop(store: Store, queue: JobQueue, settings: Arc<Settings>) {
    if settings.batch_poll_ms == 0 {
        return;
    }
    let busy_every = Duration::from_millis(settings.batch_poll_ms);
    let mut listener = listen(&store).await;
    // Look at once: batches may have been left running by another worker.
    let mut running = true;
    loop {
        // Without announcements, every tick counts.
        let wait = if running || listener.is_none() { busy_every } else { busy_every * IDLE_SLOWDOWN };
        let lost = tokio::select! {
            () = tokio::time::sleep(wait) => false,
            announced = next_batch(&mut listener) => !announced,
        };
        if lost {
            debug!("lost the batch announcements; looking now");
        }
        if listener.is_none() {
            // Listening again before the look leaves no batch unannounced in between.
            listener = listen(&store).await;
        }
        running = match feed(&store, &queue, &settings).await {
            // Every running batch still has items to feed, so none has ended.
            Some(round) if round.drained == 0 => round.running > 0,
            _ => finish(&store).await,
        };
    }
}

/// Ends the batches whose last item has ended; true while some still run.
async fn finish(store: &Store) -> bool {
    match store.finish_batches().await {
        Ok(round) => {
            for batch_id in round.ended {
                info!(%batch_id, "batch completed");
            }
            round.still_running > 0
        }
        Err(e) => {
            warn!(error = %e, "ending batches failed; will retry");
            true
        }
    }
}

/// A listener for new batches; none (every tick counts) while PostgreSQL refuses one.
async fn listen(store: &Store) -> Option<BatchListener> {
    store
        .listen_for_batches()
        .await
        .inspect_err(|e| warn!(error = %e, "cannot listen for new batches; looking every tick"))
        .ok()
}

/// Resolves when a new batch is announced (true) or the announcements were
/// lost (false); never while there is no listener.
async fn next_batch(listener: &mut Option<BatchListener>) -> bool {
    let Some(l) = listener else { return std::future::pending().await };
    match l.next().await {
        Ok(announced) => announced,
        Err(e) => {
            warn!(error = %e, "listening for new batches failed; reconnecting");
            *listener = None;
            false
        }
    }
}

/// Feeds pending batch items into the job queue, as room frees. None when
/// the round failed (it is retried at the next tick).
async fn feed(store: &Store, queue: &JobQueue, settings: &Settings) -> Option<FeedRound> {
    let mut round = store
        .feed_batches(settings.batch_window)
        .await
        .inspect_err(|e| warn!(error = %e, "feeding batches failed; will retry"))
        .ok()?;
    if !round.fed.is_empty() {
        let count = round.fed.len();
        let fed = std::mem::take(&mut round.fed);
        // Each job carries its batch's trace. Messages lost here are re-sent by
        // the reconciler: the jobs are queued in PostgreSQL.
        match queue.enqueue(&fed).await {
            Ok(()) => debug!(count, "fed batch items into the queue"),
            Err(e) => warn!(error = %e, "could not enqueue batch items' jobs"),
        }
    }
    Some(round)
}
