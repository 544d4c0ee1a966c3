//! Taking a job for processing and holding it: a claim with a lease, its
//! renewal while the job runs, and its release for a retry.

use std::time::Duration;

use chrono::{DateTime, Utc};
use facerec_core::{JobErrorCode, JobId, JobRecord, JobRef, JobStatus};
use sqlx::FromRow;
use uuid::Uuid;

use super::finish::finish;
use super::rows::{JOB_COLUMNS, JobRow, job_status};
use crate::error::QueryContext;
use crate::{Store, StoreError};

/// What a claim attempt found.
#[derive(Debug)]
pub enum ClaimOutcome {
    /// The job is ours until the lease runs out.
    Claimed(Box<Claim>),
    /// Another worker holds an unexpired lease: try again after it runs out.
    Held,
    /// The job waits for its retry time (backoff after a transient failure).
    NotYet,
    /// Nothing to do: the job is finished, canceled or does not exist.
    Done,
}

/// Proof that this worker holds a job: only the holder of the token may finish it.
#[derive(Debug, Clone)]
pub struct Claim {
    pub job: JobRecord,
    pub token: Uuid,
    pub input: Vec<u8>,
    /// A verify's second photo.
    pub second_input: Option<Vec<u8>>,
    /// Claimed from a worker whose lease had run out (it died or stalled).
    pub taken_over: bool,
    /// When it was claimed, by the database's clock (as `created_at` and `retry_at` are).
    pub claimed_at: DateTime<Utc>,
}

impl Claim {
    /// What the queue needs to send the job again (a retry), its trace context included.
    pub fn job_ref(&self) -> JobRef {
        self.job.job_ref()
    }
}

/// A claimed job with its input (absent only if the input row is missing).
#[derive(FromRow)]
struct ClaimRow {
    #[sqlx(flatten)]
    job: JobRow,
    bytes: Option<Vec<u8>>,
    second_bytes: Option<Vec<u8>>,
    taken_over: bool,
    claimed_at: DateTime<Utc>,
}

impl Store {
    /// Takes a job for processing: `queued` (and due, when it waits for a retry)
    /// → `processing`, or a `processing` job whose holder's lease ran out.
    pub async fn claim_job(&self, id: JobId, lease: Duration) -> Result<ClaimOutcome, StoreError> {
        let token = Uuid::new_v4();
        // One statement, one round trip: the claim and the input it carries,
        // from job_inputs or, for a batch's job, from its item (migration 19).
        // `prior` reads the row as it was before the claim (one snapshot for
        // the whole statement): a job claimed while `processing` was taken over.
        let sql = format!(
            "WITH prior AS (SELECT status FROM jobs WHERE id = $1), claimed AS ( \
                 UPDATE jobs SET status = 'processing', attempts = attempts + 1, \
                     started_at = coalesce(started_at, now()), claim_token = $2, \
                     lease_expires_at = now() + make_interval(secs => $3) \
                 WHERE id = $1 AND ((status = 'queued' AND (retry_at IS NULL OR retry_at <= now())) \
                     OR (status = 'processing' AND lease_expires_at < now())) \
                 RETURNING {JOB_COLUMNS}, batch_id AS item_batch, batch_seq AS item_seq) \
             SELECT c.*, coalesce(i.bytes, x.bytes) AS bytes, i.second_bytes, \
                 coalesce((SELECT status = 'processing' FROM prior), false) AS taken_over, now() AS claimed_at \
             FROM claimed c LEFT JOIN job_inputs i ON i.job_id = c.id \
                 LEFT JOIN batch_item_inputs x ON x.batch_id = c.item_batch AND x.seq = c.item_seq"
        );
        let row: Option<ClaimRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .bind(token)
            .bind(lease.as_secs_f64())
            .fetch_optional(&self.pool)
            .await
            .context("claim job")?;
        let Some(ClaimRow { job, bytes, second_bytes, taken_over, claimed_at }) = row else {
            return Ok(match job_status(&self.pool, id).await? {
                Some(JobStatus::Processing) => ClaimOutcome::Held,
                Some(JobStatus::Queued) => ClaimOutcome::NotYet,
                _ => ClaimOutcome::Done,
            });
        };
        let job = job.into_record()?;
        let Some(input) = bytes else {
            // A processing job without input can only fail; do it here so it never sticks.
            let missing = Some((JobErrorCode::Internal, "job input is missing"));
            finish(&self.pool, id, token, JobStatus::Failed, None, missing).await?;
            return Ok(ClaimOutcome::Done);
        };
        Ok(ClaimOutcome::Claimed(Box::new(Claim {
            job,
            token,
            input,
            second_input: second_bytes,
            taken_over,
            claimed_at,
        })))
    }

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

    /// Gives a claimed job back to the queue after a transient failure, not to
    /// be claimed again before `delay` has passed (by the database's clock).
    /// False when the claim was lost meanwhile.
    pub async fn release_job(&self, claim: &Claim, delay: Duration, error: &str) -> Result<bool, StoreError> {
        // The message for the retry is due at `retry_at`: the reconciler counts
        // from then (enqueued_at) before it decides that message was lost.
        let done = sqlx::query(
            "UPDATE jobs SET status = 'queued', claim_token = NULL, lease_expires_at = NULL, \
                 retry_at = now() + make_interval(secs => $3), enqueued_at = now() + make_interval(secs => $3), \
                 last_error = $4 \
             WHERE id = $1 AND claim_token = $2 AND status = 'processing'",
        )
        .bind(claim.job.id.0)
        .bind(claim.token)
        .bind(delay.as_secs_f64())
        .bind(error)
        .execute(&self.pool)
        .await
        .context("release job")?;
        Ok(done.rows_affected() == 1)
    }
}
