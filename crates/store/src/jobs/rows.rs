//! A job's row as PostgreSQL holds it, and the one place it becomes a
//! [`JobRecord`]: every text column (kind, status, error code, webhook
//! status) is parsed here, once; a value that does not parse is a
//! [`StoreError::Corrupt`] naming the column.

use chrono::{DateTime, Utc};
use facerec_core::{JobError, JobId, JobRecord, JobStatus, WebhookView};
use sqlx::{FromRow, Postgres};
use uuid::Uuid;

use crate::StoreError;
use crate::error::{QueryContext, corrupt};

/// The columns of [`JobRow`], for `SELECT` and `RETURNING`.
pub(crate) const JOB_COLUMNS: &str = "id, kind, status, params, attempts, result, error_code, error_message, \
     request_id, callback_url, created_at, started_at, finished_at, webhook_status, webhook_attempts, \
     webhook_last_status, webhook_last_error, retry_at, last_error, api_key_id, traceparent";

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
    traceparent: Option<String>,
}

impl JobRow {
    pub(crate) fn into_record(self) -> Result<JobRecord, StoreError> {
        let error = match self.error_code {
            Some(code) => Some(JobError {
                code: code.parse().map_err(corrupt("job error code"))?,
                message: self.error_message.unwrap_or_default(),
            }),
            None => None,
        };
        let webhook = match self.webhook_status {
            Some(status) => Some(WebhookView {
                status: status.parse().map_err(corrupt("job webhook status"))?,
                attempts: self.webhook_attempts,
                last_status: self.webhook_last_status,
                last_error: self.webhook_last_error,
            }),
            None => None,
        };
        Ok(JobRecord {
            id: JobId(self.id),
            kind: self.kind.parse().map_err(corrupt("job kind"))?,
            status: self.status.parse().map_err(corrupt("job status"))?,
            params: serde_json::from_value(self.params.0).map_err(corrupt("job params"))?,
            attempts: self.attempts,
            result: self.result.map(|j| j.0),
            error,
            request_id: self.request_id,
            callback_url: self.callback_url,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            webhook,
            retry_at: self.retry_at,
            last_error: self.last_error,
            api_key_id: self.api_key_id,
            traceparent: self.traceparent,
        })
    }
}

/// A job's status, if it exists (why an update matched no row).
pub(crate) async fn job_status<'c>(
    db: impl sqlx::Executor<'c, Database = Postgres>,
    id: JobId,
) -> Result<Option<JobStatus>, StoreError> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
        .bind(id.0)
        .fetch_optional(db)
        .await
        .context("read job status")?;
    status.map(|s| s.parse::<JobStatus>().map_err(corrupt("job status"))).transpose()
}
