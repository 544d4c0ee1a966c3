//! Putting jobs on the queue: the one way every producer (the api's
//! submissions, batch feeding, the reconciler, retries) sends a job, from the
//! [`JobRef`] the store returned, so every message carries the job's trace.

use std::time::{SystemTime, UNIX_EPOCH};

use apalis::prelude::{TaskBuilder, TaskSink};
use facerec_core::JobRef;

use crate::{JobMessage, JobQueue, QueueError, announce};

/// A failed send, as apalis reports it (boxed: its type is apalis's).
type SendError = Box<dyn std::error::Error + Send + Sync>;

impl JobQueue {
    /// Enqueues `jobs` in one Redis call (all of them or none) and announces
    /// them at most once, if a consumer may be idle ([`crate::ANNOUNCE_SLACK`]):
    /// one round trip and at most one wake-up of every idle consumer, however
    /// many jobs. Each message carries its job's `traceparent`.
    pub async fn enqueue(&self, jobs: &[JobRef]) -> Result<(), QueueError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let messages = jobs.iter().map(JobMessage::from).collect();
        self.push_twice(messages).await.map_err(|source| match jobs {
            [one] => QueueError::Push { job_id: one.job_id, source },
            _ => QueueError::PushMany { count: jobs.len(), source },
        })?;
        self.announce_push(jobs.len()).await;
        Ok(())
    }

    /// Enqueues `job` to be delivered at `at` (Redis keeps it in the queue's
    /// scheduled set until then), rounded up to the second. Not announced:
    /// consumers find it at the tick after it comes due.
    pub async fn enqueue_at(&self, job: &JobRef, at: SystemTime) -> Result<(), QueueError> {
        let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since_epoch.as_secs() + u64::from(since_epoch.subsec_nanos() > 0);
        let task = TaskBuilder::new(JobMessage::from(job)).run_at_timestamp(secs).build();
        let mut storage = self.storage.clone();
        storage.push_task(task).await.map_err(|e| QueueError::Push { job_id: job.job_id, source: Box::new(e) })
    }

    /// Sends messages in one Redis call (one Lua script: all of them or none),
    /// trying twice: the first command after Redis restarted fails while the
    /// connection manager reconnects. A message that did arrive the first time
    /// is harmless twice (workers claim jobs in PostgreSQL).
    async fn push_twice(&self, messages: Vec<JobMessage>) -> Result<(), SendError> {
        let mut storage = self.storage.clone();
        if let Err(e) = storage.push_bulk(messages.clone()).await {
            let (count, first) = (messages.len(), messages.first().map(JobMessage::job_id));
            tracing::warn!(count, first_job_id = ?first, error = %e, "enqueue failed; retrying once");
            storage.push_bulk(messages).await?;
        }
        Ok(())
    }

    /// Wakes idle consumers ([`crate::PushSignal`]) if there may be any
    /// ([`crate::ANNOUNCE_SLACK`]). apalis files every push under its scheduled
    /// set and announces none, so an idle worker would only find the job at
    /// its next tick. A lost announcement costs a tick.
    async fn announce_push(&self, count: usize) {
        if let Err(e) = announce::announce(&self.conn, &self.config, &self.pushes_channel(), count).await {
            tracing::debug!(error = %e, "could not announce a push");
        }
    }
}
