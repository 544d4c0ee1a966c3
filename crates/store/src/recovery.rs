//! What keeps jobs from being lost, and from piling up: finding jobs whose
//! message or worker was lost, and deleting old finished jobs. (A running
//! job's lease is renewed by its holder: `jobs::claim`.)

use std::time::Duration;

use facerec_core::{JobId, JobRef};
use uuid::Uuid;

use crate::error::{QueryContext, corrupt};
use crate::{Store, StoreError};

impl Store {
    /// Up to `limit` jobs that need a new message: queued and last enqueued
    /// (or due for their retry) more than `requeue_after` ago (the message may
    /// be lost: Redis flushed or restarted), or processing with an expired
    /// lease (the worker died) and no message sent since it expired, or none
    /// for `requeue_after`.
    /// Marks them enqueued now, so concurrent reconcilers do not both send.
    /// Each comes with its trace context, so its next attempt joins the trace
    /// of the request that created it.
    pub async fn jobs_to_reenqueue(&self, requeue_after: Duration, limit: i64) -> Result<Vec<JobRef>, StoreError> {
        let rows: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(
            "UPDATE jobs SET enqueued_at = now() WHERE id IN ( \
                 SELECT id FROM jobs \
                 WHERE (status = 'queued' AND enqueued_at < now() - make_interval(secs => $1)) \
                    OR (status = 'processing' AND lease_expires_at < now() \
                        AND (enqueued_at < lease_expires_at OR enqueued_at < now() - make_interval(secs => $1))) \
                 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING id, kind, traceparent",
        )
        .bind(requeue_after.as_secs_f64())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("find jobs to re-enqueue")?;
        rows.into_iter()
            .map(|(id, kind, traceparent)| {
                Ok(JobRef { job_id: JobId(id), kind: kind.parse().map_err(corrupt("job kind"))?, traceparent })
            })
            .collect()
    }

    /// Deletes jobs that ended more than `age` ago (their faces stay). Returns how many.
    pub async fn delete_finished_jobs(&self, age: Duration) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM jobs WHERE finished_at < now() - make_interval(secs => $1)")
            .bind(age.as_secs_f64())
            .execute(&self.pool)
            .await
            .context("delete old jobs")?;
        Ok(done.rows_affected())
    }
}
