//! How a job ends: failed or succeeded by its claim's holder, canceled while
//! queued, or removed when its message could not be sent.

use facerec_core::{JobErrorCode, JobId, JobRecord, JobStatus};
use sqlx::Postgres;
use uuid::Uuid;

use super::rows::{JOB_COLUMNS, JobRow, job_status};
use crate::error::QueryContext;
use crate::{Claim, Store, StoreError};

/// What a cancel request found.
#[derive(Debug)]
pub enum CancelOutcome {
    Canceled(Box<JobRecord>),
    /// The job is processing or has ended.
    NotCancelable(JobStatus),
    NotFound,
}

impl Store {
    /// A queued job becomes `canceled` (its input is deleted); others are left alone.
    pub async fn cancel_job(&self, id: JobId) -> Result<CancelOutcome, StoreError> {
        let mut tx = self.pool.begin().await.context("begin cancel")?;
        let sql = format!(
            "UPDATE jobs SET status = 'canceled', finished_at = now(), \
                 webhook_status = CASE WHEN callback_url IS NULL THEN NULL ELSE 'pending' END, \
                 webhook_next_at = CASE WHEN callback_url IS NULL THEN NULL ELSE now() END \
             WHERE id = $1 AND status = 'queued' RETURNING {JOB_COLUMNS}"
        );
        let row: Option<JobRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.0).fetch_optional(&mut *tx).await.context("cancel job")?;
        let Some(row) = row else {
            return Ok(match job_status(&mut *tx, id).await? {
                None => CancelOutcome::NotFound,
                Some(status) => CancelOutcome::NotCancelable(status),
            });
        };
        sqlx::query("DELETE FROM job_inputs WHERE job_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .context("delete canceled input")?;
        tx.commit().await.context("commit cancel")?;
        Ok(CancelOutcome::Canceled(Box::new(row.into_record()?)))
    }

    /// Removes a job whose enqueue failed, input included, unless a worker has
    /// already taken it (the message may have reached Redis after all).
    /// True when the job was removed.
    pub async fn delete_unqueued_job(&self, id: JobId) -> Result<bool, StoreError> {
        let deleted: Option<Uuid> =
            sqlx::query_scalar("DELETE FROM jobs WHERE id = $1 AND status = 'queued' AND attempts = 0 RETURNING id")
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await
                .context("delete unqueued job")?;
        Ok(deleted.is_some())
    }

    /// Ends a claimed job as failed. False when the claim was lost meanwhile.
    pub async fn fail_job(&self, claim: &Claim, code: JobErrorCode, message: &str) -> Result<bool, StoreError> {
        finish(&self.pool, claim.job.id, claim.token, JobStatus::Failed, None, Some((code, message))).await
    }

    /// Ends a claimed job as succeeded with `result`. False when the claim was lost meanwhile.
    pub async fn succeed_job(&self, claim: &Claim, result: &serde_json::Value) -> Result<bool, StoreError> {
        finish(&self.pool, claim.job.id, claim.token, JobStatus::Succeeded, Some(result), None).await
    }
}

/// Moves a held job to a terminal state and drops its input. Returns false,
/// writing nothing, when `token` no longer holds the job.
pub(super) async fn finish<'c>(
    db: impl sqlx::Executor<'c, Database = Postgres>,
    id: JobId,
    token: Uuid,
    status: JobStatus,
    result: Option<&serde_json::Value>,
    error: Option<(JobErrorCode, &str)>,
) -> Result<bool, StoreError> {
    // One statement: the job's end and its input's removal, together or not
    // at all (migrations/*_finish_in_one_call.sql).
    let done: bool = sqlx::query_scalar("SELECT facerec_finish_job($1, $2, $3, $4, $5, $6)")
        .bind(id.0)
        .bind(token)
        .bind(status.as_str())
        .bind(result.map(sqlx::types::Json))
        .bind(error.map(|(c, _)| c.as_str()))
        .bind(error.map(|(_, m)| m))
        .fetch_one(db)
        .await
        .context("finish job")?;
    Ok(done)
}
