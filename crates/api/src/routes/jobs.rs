use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use facerec_core::{JobId, JobKind, JobStatus};
use facerec_store::JobRecord;
use serde::Serialize;

use crate::{ApiError, AppState, ErrorCode};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobError {
    /// Why the job failed; stable.
    #[schema(value_type = facerec_core::JobErrorCode)]
    pub code: String,
    pub message: String,
}

/// The body of `GET /v1/jobs/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub job_id: JobId,
    pub kind: JobKind,
    pub status: JobStatus,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    /// When `succeeded`: a `RegisterResult`, `RecognizeResult` or `EmbedResult`, by `kind`.
    #[schema(value_type = Option<Object>)]
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

/// A job's status, and its result or error once it has ended.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, format = Uuid, description = "The job id (a UUID) from the submission")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 400, description = "`invalid_job_id`", body = crate::ErrorBody),
        (status = 404, description = "`job_not_found`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody)
    )
)]
pub async fn get_job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    let id: JobId = id.parse().map_err(|_| ApiError::new(ErrorCode::InvalidJobId, "the job id must be a UUID"))?;
    let job =
        state.store.get_job(id).await?.ok_or_else(|| ApiError::new(ErrorCode::JobNotFound, "no job has this id"))?;
    Ok(Json(job.into()))
}
