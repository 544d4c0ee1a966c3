//! Background duties of every worker besides jobs: re-sending messages for
//! jobs that would otherwise wait forever (PostgreSQL is the truth, Redis is
//! disposable), deleting old finished jobs, and vacuuming Redis.

use std::sync::Arc;
use std::time::Duration;

use facerec_queue::JobQueue;
use facerec_store::Store;
use tracing::{debug, info, warn};

use crate::Settings;

/// Jobs re-sent per round at most; the next round takes the rest.
const REENQUEUE_BATCH: i64 = 500;

fn every(secs: u64) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(Duration::from_secs(secs));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// Finds jobs whose message was lost (queued too long) or whose worker died
/// (lease expired) and sends them again; a duplicate message is harmless,
/// since workers claim jobs in PostgreSQL. Also applies job retention.
pub(crate) async fn reconcile_loop(store: Store, queue: JobQueue, settings: Arc<Settings>) {
    if settings.reconcile_secs == 0 {
        return;
    }
    let requeue_after = Duration::from_secs(settings.requeue_after_secs);
    let retention = Duration::from_secs(settings.job_retention_days * 24 * 3600);
    let mut tick = every(settings.reconcile_secs);
    loop {
        tick.tick().await;
        match store.jobs_to_reenqueue(requeue_after, REENQUEUE_BATCH).await {
            // One Redis call for the round; each job keeps the trace of the
            // request that created it (read from its row).
            Ok(jobs) if jobs.is_empty() => {}
            Ok(jobs) => match queue.enqueue(&jobs).await {
                Ok(()) => {
                    metrics::counter!(facerec_telemetry::metrics::names::RECONCILER_RESENDS)
                        .increment(jobs.len() as u64);
                    info!(count = jobs.len(), "re-enqueued jobs whose message or worker was lost");
                }
                // The jobs stay due: a later round sends them again.
                Err(e) => warn!(count = jobs.len(), error = %e, "could not re-enqueue jobs"),
            },
            Err(e) => warn!(error = %e, "reconciliation failed; will retry"),
        }
        match store.prune_face_changes(FACE_CHANGES_KEPT).await {
            Ok(0) => {}
            Ok(n) => debug!(deleted = n, "pruned the face change log"),
            Err(e) => warn!(error = %e, "pruning the face change log failed; will retry"),
        }
        if settings.job_retention_days > 0 {
            match store.delete_finished_jobs(retention).await {
                Ok(0) => {}
                Ok(n) => info!(deleted = n, "deleted finished jobs past retention"),
                Err(e) => warn!(error = %e, "job retention failed; will retry"),
            }
            match store.delete_finished_batches(retention).await {
                Ok(0) => {}
                Ok(n) => info!(deleted = n, "deleted finished batches past retention"),
                Err(e) => warn!(error = %e, "batch retention failed; will retry"),
            }
        }
    }
}

/// How long the log that in-memory face indexes follow keeps an entry; a
/// worker whose index is further behind reloads the collection.
const FACE_CHANGES_KEPT: Duration = Duration::from_secs(3600);

/// Keeps Redis from growing with every job: apalis keeps each message's
/// payload and metadata after it is done.
pub(crate) async fn vacuum_loop(queue: JobQueue, settings: Arc<Settings>) {
    if settings.vacuum_secs == 0 {
        return;
    }
    let mut tick = every(settings.vacuum_secs);
    loop {
        tick.tick().await;
        match queue.vacuum(Duration::from_secs(settings.queue_retention_secs)).await {
            Ok(0) => {}
            Ok(removed) => debug!(removed, "removed finished messages from Redis"),
            Err(e) => warn!(error = %e, "queue vacuum failed"),
        }
    }
}
