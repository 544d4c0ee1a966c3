use std::time::Duration;

use chrono::{DateTime, Utc};
use facerec_core::{
    Durations, JobError, JobErrorCode, JobId, JobKind, JobParams, JobStatus, JobView, RetryView, WebhookView,
};
use sqlx::{FromRow, Postgres, Transaction};
use uuid::Uuid;

use crate::collections::ensure_collection;
use crate::error::QueryContext;
use crate::{Store, StoreError};

/// A job as submitted, with its upload.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: JobId,
    pub params: JobParams,
    pub request_id: Option<String>,
    pub callback_url: Option<String>,
    pub content_type: String,
    pub input: Vec<u8>,
    /// A verify's second photo (content type, bytes).
    pub second_input: Option<(String, Vec<u8>)>,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
    /// For a register into a collection that does not exist yet: create it,
    /// requiring consent or not.
    pub create_collection: Option<bool>,
    /// The API key that submitted it (none in open mode or for the master key).
    pub api_key_id: Option<Uuid>,
}

/// What a submission did.
#[derive(Debug)]
pub enum Submitted {
    /// The job was recorded; it must be enqueued.
    Created,
    /// The idempotency key already names this job (created in the last 24 hours).
    Existing(Box<JobRecord>),
}

/// What a cancel request found.
#[derive(Debug)]
pub enum CancelOutcome {
    Canceled(Box<JobRecord>),
    /// The job is processing or has ended.
    NotCancelable(JobStatus),
    NotFound,
}

/// A job as stored.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub id: JobId,
    pub kind: JobKind,
    pub status: JobStatus,
    pub params: JobParams,
    pub attempts: i32,
    pub result: Option<serde_json::Value>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub request_id: Option<String>,
    pub callback_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Delivery state of the outcome to `callback_url`, once the job has ended.
    pub webhook: Option<WebhookView>,
    /// When a job that failed transiently may run again.
    pub retry_at: Option<DateTime<Utc>>,
    /// The transient error of its last attempt.
    pub last_error: Option<String>,
    /// The API key that submitted it.
    pub api_key_id: Option<Uuid>,
}

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

#[derive(FromRow)]
pub(crate) struct JobRow {
    id: Uuid,
    kind: String,
    status: String,
    params: sqlx::types::Json<serde_json::Value>,
    attempts: i32,
    result: Option<sqlx::types::Json<serde_json::Value>>,
    error_code: Option<String>,
    error_message: Option<String>,
    request_id: Option<String>,
    callback_url: Option<String>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    webhook_status: Option<String>,
    webhook_attempts: i32,
    webhook_last_status: Option<i32>,
    webhook_last_error: Option<String>,
    retry_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    api_key_id: Option<Uuid>,
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

pub(crate) const JOB_COLUMNS: &str = "id, kind, status, params, attempts, result, error_code, error_message, \
     request_id, callback_url, created_at, started_at, finished_at, webhook_status, webhook_attempts, \
     webhook_last_status, webhook_last_error, retry_at, last_error, api_key_id";

/// Jobs sent by the API key `$2` (or, for `NULL`, without one), in the form
/// the idempotency index is built on.
const SAME_SENDER: &str = "coalesce(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid) \
     = coalesce($2::uuid, '00000000-0000-0000-0000-000000000000'::uuid)";

pub(crate) fn corrupt<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Corrupt { what, source: Box::new(e) }
}

impl TryFrom<JobRow> for JobRecord {
    type Error = StoreError;
    fn try_from(r: JobRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: JobId(r.id),
            kind: r.kind.parse().map_err(corrupt("job kind"))?,
            status: r.status.parse().map_err(corrupt("job status"))?,
            params: serde_json::from_value(r.params.0).map_err(corrupt("job params"))?,
            attempts: r.attempts,
            result: r.result.map(|j| j.0),
            error_code: r.error_code,
            error_message: r.error_message,
            request_id: r.request_id,
            callback_url: r.callback_url,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            webhook: r.webhook_status.map(|status| WebhookView {
                status,
                attempts: r.webhook_attempts,
                last_status: r.webhook_last_status,
                last_error: r.webhook_last_error,
            }),
            retry_at: r.retry_at,
            last_error: r.last_error,
            api_key_id: r.api_key_id,
        })
    }
}

impl From<JobRecord> for JobView {
    fn from(j: JobRecord) -> Self {
        let durations = Durations::of(j.created_at, j.started_at, j.finished_at, Utc::now());
        let error = j.error_code.map(|code| JobError { code, message: j.error_message.unwrap_or_default() });
        Self {
            job_id: j.id,
            kind: j.kind,
            status: j.status,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            attempts: j.attempts,
            result: j.result,
            error,
            durations,
            webhook: j.webhook,
            retry: match (j.status, j.retry_at, j.last_error) {
                (JobStatus::Queued, Some(next_attempt_at), Some(last_error)) => {
                    Some(RetryView { next_attempt_at, last_error })
                }
                _ => None,
            },
        }
    }
}

impl Store {
    /// Records a queued job and its upload, atomically; or, when its
    /// idempotency key already names a job from the last 24 hours, that job.
    pub async fn insert_job(&self, job: &NewJob) -> Result<Submitted, StoreError> {
        let params = serde_json::to_value(&job.params)
            .map_err(|e| StoreError::Corrupt { what: "job params", source: Box::new(e) })?;
        if job.create_collection.is_none() {
            // The usual submission, a first idempotency key included: one
            // statement, one round trip, atomic on its own. A key already
            // taken inserts nothing and goes the careful way below.
            if insert_job_rows(&self.pool, job, &params).await.context("insert job")? {
                return Ok(Submitted::Created);
            }
            if job.idempotency_key.is_none() {
                return Err(StoreError::Conflict("job id"));
            }
        }
        let mut tx = self.pool.begin().await.context("begin insert job")?;
        if let Some(key) = &job.idempotency_key
            && let Some(existing) = self.job_by_key(&mut tx, job.api_key_id, key).await?
        {
            return Ok(Submitted::Existing(Box::new(existing)));
        }
        if !insert_job_rows(&mut *tx, job, &params).await.context("insert job")? {
            // A concurrent request with the same key won the race (its insert
            // committed while ours waited): answer with its job.
            let key = job.idempotency_key.as_deref().ok_or(StoreError::Conflict("job id"))?;
            let existing = self.job_by_key(&mut tx, job.api_key_id, key).await?;
            return existing.map(|j| Submitted::Existing(Box::new(j))).ok_or(StoreError::Conflict("idempotency key"));
        }
        if let (JobParams::Register(p), Some(require_consent)) = (&job.params, job.create_collection) {
            ensure_collection(&mut tx, &p.collection, require_consent).await?;
        }
        tx.commit().await.context("commit insert job")?;
        Ok(Submitted::Created)
    }

    /// The job an idempotency key names among those the same API key sent,
    /// releasing the key first if it is over 24 hours old.
    async fn job_by_key(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        api_key: Option<Uuid>,
        key: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET idempotency_key = NULL \
             WHERE idempotency_key = $1 AND {SAME_SENDER} AND created_at < now() - interval '24 hours'"
        )))
        .bind(key)
        .bind(api_key)
        .execute(&mut **tx)
        .await
        .context("release old idempotency key")?;
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE idempotency_key = $1 AND {SAME_SENDER}");
        let row: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .bind(api_key)
            .fetch_optional(&mut **tx)
            .await
            .context("read job by idempotency key")?;
        row.map(JobRecord::try_from).transpose()
    }

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
            return match job_status(&mut *tx, id).await? {
                None => Ok(CancelOutcome::NotFound),
                Some(s) => Ok(CancelOutcome::NotCancelable(s.parse().map_err(corrupt("job status"))?)),
            };
        };
        sqlx::query("DELETE FROM job_inputs WHERE job_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .context("delete canceled input")?;
        tx.commit().await.context("commit cancel")?;
        Ok(CancelOutcome::Canceled(Box::new(JobRecord::try_from(row)?)))
    }

    /// Removes a job whose enqueue failed, input included, unless a worker has
    /// already taken it (the message may have reached Redis after all).
    /// True when the job was removed.
    pub async fn delete_unqueued_job(&self, id: JobId) -> Result<bool, StoreError> {
        let deleted: Option<uuid::Uuid> =
            sqlx::query_scalar("DELETE FROM jobs WHERE id = $1 AND status = 'queued' AND attempts = 0 RETURNING id")
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await
                .context("delete unqueued job")?;
        Ok(deleted.is_some())
    }

    pub async fn get_job(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        let row: Option<JobRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.0).fetch_optional(&self.pool).await.context("get job")?;
        row.map(JobRecord::try_from).transpose()
    }

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
            return Ok(match job_status(&self.pool, id).await?.as_deref() {
                Some("processing") => ClaimOutcome::Held,
                Some("queued") => ClaimOutcome::NotYet,
                _ => ClaimOutcome::Done,
            });
        };
        let job = JobRecord::try_from(job)?;
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

    /// Ends a claimed job as failed. False when the claim was lost meanwhile.
    pub async fn fail_job(&self, claim: &Claim, code: JobErrorCode, message: &str) -> Result<bool, StoreError> {
        finish(&self.pool, claim.job.id, claim.token, JobStatus::Failed, None, Some((code, message))).await
    }

    /// Ends a claimed job as succeeded with `result`. False when the claim was lost meanwhile.
    pub async fn succeed_job(&self, claim: &Claim, result: &serde_json::Value) -> Result<bool, StoreError> {
        finish(&self.pool, claim.job.id, claim.token, JobStatus::Succeeded, Some(result), None).await
    }
}

/// The job's row and its input's, in one statement. False, inserting
/// nothing, when the job's idempotency key (or id) is taken.
async fn insert_job_rows<'c>(
    db: impl sqlx::Executor<'c, Database = Postgres>,
    job: &NewJob,
    params: &serde_json::Value,
) -> Result<bool, sqlx::Error> {
    let (second_type, second_bytes) = job.second_input.as_ref().map(|(t, b)| (t, b)).unzip();
    let done = sqlx::query(
        "WITH job AS ( \
             INSERT INTO jobs (id, kind, status, params, request_id, callback_url, idempotency_key, api_key_id) \
             VALUES ($1, $2, 'queued', $3, $4, $5, $6, $11) ON CONFLICT DO NOTHING RETURNING id) \
         INSERT INTO job_inputs (job_id, content_type, bytes, second_content_type, second_bytes) \
         SELECT id, $7, $8, $9, $10 FROM job",
    )
    .bind(job.id.0)
    .bind(job.params.kind().as_str())
    .bind(sqlx::types::Json(params))
    .bind(&job.request_id)
    .bind(&job.callback_url)
    .bind(&job.idempotency_key)
    .bind(&job.content_type)
    .bind(&job.input)
    .bind(second_type)
    .bind(second_bytes)
    .bind(job.api_key_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A job's status as stored, if it exists (why an update matched no row).
async fn job_status<'c>(
    db: impl sqlx::Executor<'c, Database = Postgres>,
    id: JobId,
) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
        .bind(id.0)
        .fetch_optional(db)
        .await
        .context("read job status")
}

/// Moves a held job to a terminal state and drops its input. Returns false,
/// writing nothing, when `token` no longer holds the job.
async fn finish<'c>(
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
