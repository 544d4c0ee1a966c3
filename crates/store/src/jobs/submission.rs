//! Recording a submitted job with its upload, and idempotency: a key the same
//! sender used in the last 24 hours answers with the job it first made.

use facerec_core::{JobId, JobParams, JobRecord, JobRef};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::rows::{JOB_COLUMNS, JobRow};
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
    /// W3C trace context of the submitting request, kept with the job so
    /// every message for it (a retry's, the reconciler's) joins that trace.
    pub traceparent: Option<String>,
}

impl NewJob {
    /// What the queue needs to send this job.
    pub fn job_ref(&self) -> JobRef {
        JobRef { job_id: self.id, kind: self.params.kind(), traceparent: self.traceparent.clone() }
    }
}

/// What a submission did.
#[derive(Debug)]
pub enum Submitted {
    /// The job was recorded; it must be enqueued, as this names it.
    Created(JobRef),
    /// The idempotency key already names this job (created in the last 24 hours).
    Existing(Box<JobRecord>),
}

/// Jobs sent by the API key `$2` (or, for `NULL`, without one), in the form
/// the idempotency index is built on.
const SAME_SENDER: &str = "coalesce(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid) \
     = coalesce($2::uuid, '00000000-0000-0000-0000-000000000000'::uuid)";

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
                return Ok(Submitted::Created(job.job_ref()));
            }
            if job.idempotency_key.is_none() {
                return Err(StoreError::Conflict("job id"));
            }
        }
        let mut tx = self.pool.begin().await.context("begin insert job")?;
        if let Some(key) = &job.idempotency_key
            && let Some(existing) = job_by_key(&mut tx, job.api_key_id, key).await?
        {
            return Ok(Submitted::Existing(Box::new(existing)));
        }
        if !insert_job_rows(&mut *tx, job, &params).await.context("insert job")? {
            // A concurrent request with the same key won the race (its insert
            // committed while ours waited): answer with its job.
            let key = job.idempotency_key.as_deref().ok_or(StoreError::Conflict("job id"))?;
            let existing = job_by_key(&mut tx, job.api_key_id, key).await?;
            return existing.map(|j| Submitted::Existing(Box::new(j))).ok_or(StoreError::Conflict("idempotency key"));
        }
        if let (JobParams::Register(p), Some(require_consent)) = (&job.params, job.create_collection) {
            ensure_collection(&mut tx, &p.collection, require_consent).await?;
        }
        tx.commit().await.context("commit insert job")?;
        Ok(Submitted::Created(job.job_ref()))
    }
}

/// The job an idempotency key names among those the same API key sent,
/// releasing the key first if it is over 24 hours old.
async fn job_by_key(
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
    row.map(JobRow::into_record).transpose()
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
             INSERT INTO jobs (id, kind, status, params, request_id, callback_url, idempotency_key, api_key_id, \
                 traceparent) \
             VALUES ($1, $2, 'queued', $3, $4, $5, $6, $11, $12) ON CONFLICT DO NOTHING RETURNING id) \
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
    .bind(&job.traceparent)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}
