use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use facerec_core::{JobId, JobKind, JobStatus};
use facerec_store::JobRecord;
use serde::Serialize;

use crate::{ApiError, AppState};

#[derive(Debug, Serialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

/// The body of `GET /v1/jobs/{id}`.
#[derive(Debug, Serialize)]
pub struct JobView {
    pub job_id: JobId,
    pub kind: JobKind,
    pub status: JobStatus,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub result: Option<serde_json::Value>,
    pub error: Option<JobError>,
}

impl From<JobRecord> for JobView {
    fn from(j: JobRecord) -> Self {
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
        }
    }
}

pub async fn get_job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    let id: JobId = id.parse().map_err(|_| ApiError::invalid("invalid_job_id", "the job id must be a UUID"))?;
    let job = state.store.get_job(id).await?.ok_or_else(ApiError::job_not_found)?;
    Ok(Json(job.into()))
}
