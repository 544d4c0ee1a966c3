//! A job as stored: the one typed record of a job, which the store reads from
//! its row (each text column parsed once, there) and every other crate uses
//! as it is. Clients see it as a [`crate::JobView`].

use chrono::{DateTime, Utc};
use uuid::Uuid;

use serde::{Deserialize, Serialize};

use crate::{JobErrorCode, JobId, JobKind, JobParams, JobRef, JobStatus, WebhookStatus};

#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: JobId,
    pub kind: JobKind,
    pub status: JobStatus,
    pub params: JobParams,
    /// Claims so far, each counted when taken.
    pub attempts: i32,
    /// When `succeeded`: the kind's result as JSON.
    pub result: Option<serde_json::Value>,
    /// When `failed`: why.
    pub error: Option<JobError>,
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
    /// W3C trace context of the request that created the job (or its batch).
    pub traceparent: Option<String>,
}

impl JobRecord {
    /// What the queue needs to (re-)send this job.
    pub fn job_ref(&self) -> JobRef {
        JobRef { job_id: self.id, kind: self.kind, traceparent: self.traceparent.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobError {
    /// Why the job failed; stable.
    pub code: JobErrorCode,
    pub message: String,
}

/// `pending` until delivered (a 2xx answer) or given up (`failed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookView {
    /// `pending`, `delivered` or `failed`.
    pub status: WebhookStatus,
    pub attempts: i32,
    /// HTTP status of the last attempt, if the receiver answered.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
}
