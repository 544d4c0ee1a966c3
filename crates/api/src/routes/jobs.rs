use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use facerec_core::{JobId, JobView};
use facerec_store::CancelOutcome;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::query::{known_params, parse};
use crate::auth::Caller;
use crate::{ApiError, AppState, ErrorCode};

/// Longest `wait_ms`: below the shutdown timeout, so a stopping api's
/// waiting requests still get their answer.
const MAX_WAIT_MS: u64 = 20_000;
/// A waiting request reads the job at least this often, in case its end
/// was announced while the listener reconnected.
const RECHECK: Duration = Duration::from_secs(1);

/// A job's status, and its result or error once it has ended. With `wait_ms`,
/// the answer waits until the job ends (or that long): one request instead of
/// polling.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(
        ("id" = String, Path, format = Uuid, description = "The job id (a UUID) from the submission"),
        ("wait_ms" = Option<u64>, Query, maximum = 20000,
            description = "Answer once the job has ended, or after this many milliseconds with its status then \
            (0 to 20000; default 0: at once). The end is announced by PostgreSQL, so the answer comes within \
            milliseconds of it.")
    ),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 400, description = "`invalid_job_id`, `invalid_wait`, `unknown_field`", body = crate::ErrorBody),
        (status = 404, description = "`job_not_found`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<JobView>, ApiError> {
    known_params(&query, &["wait_ms"])?;
    let id = job_id(&id)?;
    let wait = parse(&query, "wait_ms", ErrorCode::InvalidWait, |v| v.parse().ok().filter(|ms| *ms <= MAX_WAIT_MS))?
        .unwrap_or(0);
    // Subscribed before the first read, so an end between the two is not missed.
    let mut ends = (wait > 0).then(|| state.job_ends.subscribe());
    let deadline = Instant::now() + Duration::from_millis(wait);
    loop {
        let job = state.store.get_job(id).await?.filter(|j| caller.sees_job(j)).ok_or_else(not_found)?;
        let Some(ends) = ends.as_mut() else { return Ok(Json(job.into())) };
        if job.status.is_terminal() || Instant::now() >= deadline {
            return Ok(Json(job.into()));
        }
        let next_read = deadline.min(Instant::now() + RECHECK);
        loop {
            match tokio::time::timeout_at(next_read, ends.recv()).await {
                Ok(Ok(ended)) if ended == id => break,
                Ok(Ok(_)) => {}
                // Missed some: read the job again.
                Ok(Err(RecvError::Lagged(_))) => break,
                Ok(Err(RecvError::Closed)) => {
                    tokio::time::sleep_until(next_read).await;
                    break;
                }
                Err(_elapsed) => break,
            }
        }
    }
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
pub async fn cancel_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = job_id(&id)?;
    if caller.grant().is_some() && !state.store.get_job(id).await?.is_some_and(|j| caller.sees_job(&j)) {
        return Err(not_found());
    }
    match state.store.cancel_job(id).await? {
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
