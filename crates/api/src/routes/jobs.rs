use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use facerec_core::{JobId, JobKind, JobStatus};
use facerec_store::{CancelOutcome, JobRecord};
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
    pub durations: Durations,
}

/// How long the job waited and ran so far, in milliseconds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Durations {
    /// From submission to its first start (or to now, while queued; `null` if canceled unstarted).
    pub queued_ms: Option<i64>,
    /// From its first start to its end (or to now, while processing).
    pub processing_ms: Option<i64>,
}

impl Durations {
    fn of(j: &JobRecord, now: DateTime<Utc>) -> Self {
        let ms = |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).num_milliseconds().max(0);
        let queued_ms = match (j.started_at, j.finished_at) {
            (Some(started), _) => Some(ms(j.created_at, started)),
            (None, None) => Some(ms(j.created_at, now)),
            (None, Some(_)) => None,
        };
        let processing_ms = j.started_at.map(|started| ms(started, j.finished_at.unwrap_or(now)));
        Self { queued_ms, processing_ms }
    }
}

impl From<JobRecord> for JobView {
    fn from(j: JobRecord) -> Self {
        let durations = Durations::of(&j, Utc::now());
        let error = j.error_code.map(|code| JobError { code, message: j.error_message.unwrap_or_default() });
        Self {
            durations,
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
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn get_job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    let job = state.store.get_job(job_id(&id)?).await?.ok_or_else(not_found)?;
    Ok(Json(job.into()))
}

fn job_id(raw: &str) -> Result<JobId, ApiError> {
    raw.parse().map_err(|_| ApiError::new(ErrorCode::InvalidJobId, "the job id must be a UUID"))
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::JobNotFound, "no job has this id")
}

/// Cancels a queued job: it will not run, and its upload is deleted.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    tag = "jobs",
    params(("id" = String, Path, format = Uuid, description = "The job id")),
    responses(
        (status = 200, description = "Canceled", body = JobView),
        (status = 400, description = "`invalid_job_id`", body = crate::ErrorBody),
        (status = 404, description = "`job_not_found`", body = crate::ErrorBody),
        (status = 409, description = "`job_not_cancelable`: it is processing or has ended", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn cancel_job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    match state.store.cancel_job(job_id(&id)?).await? {
        CancelOutcome::Canceled(job) => Ok(Json((*job).into())),
        CancelOutcome::NotFound => Err(not_found()),
        CancelOutcome::NotCancelable(status) => Err(ApiError::new(
            ErrorCode::JobNotCancelable,
            format!("the job is {status}; only a queued job can be canceled"),
        )),
    }
}
