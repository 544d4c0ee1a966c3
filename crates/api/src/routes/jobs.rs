use axum::Json;
use axum::extract::{Path, State};
use facerec_core::{JobId, JobView};
use facerec_store::CancelOutcome;

use crate::{ApiError, AppState, ErrorCode};

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
        CancelOutcome::Canceled(job) => {
            // It left the queue: the next submission counts again rather than trust the cached depth.
            state.admission.forget_queued();
            Ok(Json((*job).into()))
        }
        CancelOutcome::NotFound => Err(not_found()),
        CancelOutcome::NotCancelable(status) => Err(ApiError::new(
            ErrorCode::JobNotCancelable,
            format!("the job is {status}; only a queued job can be canceled"),
        )),
    }
}
