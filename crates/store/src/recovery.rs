//! What keeps jobs from being lost: lease renewal while a job runs, finding
//! jobs whose message or worker was lost, and deleting old finished jobs.

use std::time::Duration;

use facerec_core::{JobId, JobKind};
use uuid::Uuid;

use crate::error::QueryContext;
use crate::{Claim, Store, StoreError};

impl Store {
    /// Extends the lease of a job this worker still holds. False when the claim was lost.
    pub async fn renew_lease(&self, claim: &Claim, lease: Duration) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3) \
             WHERE id = $1 AND claim_token = $2 AND status = 'processing'",
        )
        .bind(claim.job.id.0)
        .bind(claim.token)
        .bind(lease.as_secs_f64())
        .execute(&self.pool)
        .await
        .context("renew lease")?;
        Ok(done.rows_affected() == 1)
    }

    /// Up to `limit` jobs that need a new message: queued and last enqueued
    /// (or due for their retry) more than `requeue_after` ago (the message may
    /// be lost: Redis flushed or restarted), or processing with an expired
    /// lease (the worker died) and no message sent since it expired, or none
    /// for `requeue_after`.
    /// Marks them enqueued now, so concurrent reconcilers do not both send.
    pub async fn jobs_to_reenqueue(
        &self,
        requeue_after: Duration,
        limit: i64,
    ) -> Result<Vec<(JobId, JobKind)>, StoreError> {
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "UPDATE jobs SET enqueued_at = now() WHERE id IN ( \
                 SELECT id FROM jobs \
                 WHERE (status = 'queued' AND enqueued_at < now() - make_interval(secs => $1)) \
                    OR (status = 'processing' AND lease_expires_at < now() \
                        AND (enqueued_at < lease_expires_at OR enqueued_at < now() - make_interval(secs => $1))) \
                 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING id, kind",
        )
        .bind(requeue_after.as_secs_f64())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("find jobs to re-enqueue")?;
        rows.into_iter()
            .map(|(id, kind)| {
                let kind = kind.parse().map_err(|e| StoreError::Corrupt { what: "job kind", source: Box::new(e) })?;
                Ok((JobId(id), kind))
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
