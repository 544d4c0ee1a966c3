//! `GET /v1/jobs` (filtered, cursor-paged, newest first) and `GET /v1/stats`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use facerec_core::{CollectionName, JobId, JobView};
use serde::Serialize;

use crate::auth::Caller;
use crate::routes::gallery::{collection_not_found, limit, next_id_cursor};
use crate::routes::query::{known_params, parse};
use crate::{ApiError, AppState, ErrorCode};

/// A page of jobs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobPage {
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Jobs per state, and the back-pressure limit on queued ones.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub queued: i64,
    pub processing: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub canceled: i64,
    /// Submissions get `429 queue_full` once `queued` reaches this.
    pub max_queued: i64,
}

/// Lists jobs, newest first, narrowed by every filter given.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    params(
        ("status" = Option<facerec_core::JobStatus>, Query, description = "Only jobs in this state"),
        ("kind" = Option<facerec_core::JobKind>, Query, description = "Only jobs of this kind"),
        ("collection" = Option<String>, Query, description = "Only register and recognize jobs on this collection"),
        ("created_after" = Option<String>, Query, format = DateTime, description = "Created at or after (RFC 3339)"),
        ("created_before" = Option<String>, Query, format = DateTime, description = "Created before (RFC 3339)"),
        ("idempotency_key" = Option<String>, Query, description = "Only the job submitted with this `Idempotency-Key` (how a client resuming a bulk load finds what it already sent)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")
    ),
    responses(
        (status = 200, description = "A page of jobs", body = JobPage),
        (status = 400, description = "`invalid_status`, `invalid_kind`, `invalid_collection`, `invalid_time`, `invalid_idempotency_key`, `invalid_limit`, `invalid_cursor`, `unknown_field`", body = crate::ErrorBody),
        (status = 404, description = "`collection_not_found`: no job matches and the collection does not exist (or is out of the key's reach)", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn list_jobs(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<JobPage>, ApiError> {
    known_params(
        &query,
        &["status", "kind", "collection", "created_after", "created_before", "idempotency_key", "cursor", "limit"],
    )?;
    let time = |v: &str| DateTime::parse_from_rfc3339(v).ok().map(|t| t.with_timezone(&Utc));
    let filter = facerec_store::JobFilter {
        status: parse(&query, "status", ErrorCode::InvalidStatus, |v| v.parse().ok())?,
        kind: parse(&query, "kind", ErrorCode::InvalidKind, |v| v.parse().ok())?,
        collection: parse(&query, "collection", ErrorCode::InvalidCollection, |v| CollectionName::parse(v).ok())?,
        created_after: parse(&query, "created_after", ErrorCode::InvalidTime, time)?,
        created_before: parse(&query, "created_before", ErrorCode::InvalidTime, time)?,
        idempotency_key: parse(&query, "idempotency_key", ErrorCode::InvalidIdempotencyKey, |v| {
            ((1..=255).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic())).then(|| v.to_owned())
        })?,
        before: parse(&query, "cursor", ErrorCode::InvalidCursor, |v| v.parse::<JobId>().ok())?,
        visible: caller.visibility(),
    };
    let limit = limit(&query)?;
    let jobs = state.store.list_jobs(&filter, limit).await?;
    // A misspelt collection must not read as "no jobs there": a first page
    // that is empty for a collection that does not exist (or that the key may
    // not reach, as everywhere) is 404. Jobs of a deleted collection still list.
    if let Some(name) = &filter.collection
        && jobs.is_empty()
        && filter.before.is_none()
        && (!caller.reaches(name.as_str()) || !state.store.collection_exists(name).await?)
    {
        return Err(collection_not_found(name));
    }
    let next_cursor = next_id_cursor(&jobs, limit, |j| j.id.0);
    Ok(Json(JobPage { jobs: jobs.into_iter().map(JobView::from).collect(), next_cursor }))
}

/// How many jobs are in each state: the queue depth clients and operators
/// watch. An API key counts only the jobs it may see.
#[utoipa::path(
    get,
    path = "/v1/stats",
    tag = "jobs",
    responses(
        (status = 200, description = "Counts", body = Stats),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn stats(State(state): State<AppState>, caller: Caller) -> Result<Json<Stats>, ApiError> {
    let c = state.store.job_counts(&caller.visibility()).await?;
    Ok(Json(Stats {
        queued: c.queued,
        processing: c.processing,
        succeeded: c.succeeded,
        failed: c.failed,
        canceled: c.canceled,
        max_queued: state.settings.max_queued_jobs,
    }))
}
