//! Archive batches, from the worker's side: items are fed into the job queue
//! as room frees (a window of queued batch jobs, so single submissions keep
//! their room), and a batch ends once its last item has. Every worker runs
//! this loop; the store takes items with `SKIP LOCKED`, so they never collide.

use std::sync::Arc;
use std::time::Duration;

use facerec_queue::{JobMessage, JobQueue};
use facerec_store::Store;
use tracing::{debug, info, warn};

use crate::Settings;

pub(crate) async fn batch_loop(store: Store, queue: JobQueue, settings: Arc<Settings>) {
    if settings.batch_poll_ms == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(settings.batch_poll_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match store.feed_batches(settings.batch_window).await {
            Ok(jobs) => {
                for (job_id, kind) in &jobs {
                    // A message lost here is re-sent by the reconciler: the job is queued in PostgreSQL.
                    if let Err(e) = queue.push(JobMessage::new(*job_id, *kind)).await {
                        warn!(%job_id, error = %e, "could not enqueue a batch item's job");
                    }
                }
                if !jobs.is_empty() {
                    debug!(count = jobs.len(), "fed batch items into the queue");
                }
            }
            Err(e) => warn!(error = %e, "feeding batches failed; will retry"),
        }
        match store.finish_batches().await {
            Ok(ended) => {
                for batch_id in ended {
                    info!(%batch_id, "batch completed");
                }
            }
            Err(e) => warn!(error = %e, "ending batches failed; will retry"),
        }
    }
}
