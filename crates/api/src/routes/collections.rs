//! `/v1/collections`: create, list, read, update and delete collections.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use facerec_core::{AuditEntry, CollectionName, CollectionView, Threshold};
use facerec_store::{CollectionPatch, NewCollection};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::routes::gallery::{
    body, collection_name, collection_not_found, limit, name_cursor, next_name_cursor, nullable, request_id,
};
use crate::routes::query::known_params;
use crate::{ApiError, AppState, ErrorCode};

/// Body of `POST /v1/collections`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollection {
    /// `[A-Za-z0-9_-]{1,64}`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    /// At most 1000 characters.
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// Default threshold of recognize and verify in this collection, from -1 to 1.
    #[schema(minimum = -1.0, maximum = 1.0)]
    pub threshold: Option<f32>,
    /// Whether register needs a `consent` reference; default `FACEREC_REQUIRE_CONSENT`.
    pub require_consent: Option<bool>,
}

/// Body of `PATCH /v1/collections/{name}`: absent fields stay, `null` clears.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCollection {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<f32>, minimum = -1.0, maximum = 1.0)]
    pub threshold: Option<Option<f32>>,
    pub require_consent: Option<bool>,
}

/// A page of collections, by name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CollectionPage {
    pub collections: Vec<CollectionView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

fn description(d: Option<String>) -> Result<Option<String>, ApiError> {
    match d {
        Some(d) if d.chars().count() > 1000 || d.contains('\0') => Err(ApiError::new(
            ErrorCode::InvalidDescription,
            "description must be at most 1000 characters, without NUL",
        )),
        d => Ok(d),
    }
}

fn threshold(t: Option<f32>) -> Result<Option<f32>, ApiError> {
    t.map(|t| {
        Threshold::new(t).map(Threshold::get).ok_or_else(|| {
            ApiError::new(ErrorCode::InvalidThreshold, format!("threshold must be a number from -1 to 1, got {t}"))
        })
    })
    .transpose()
}

/// The collection named in the path, if the caller reaches it; to a key
/// whose patterns do not match, it does not exist.
pub(crate) fn reachable(caller: &Caller, raw: &str) -> Result<CollectionName, ApiError> {
    let name = collection_name(raw)?;
    if caller.reaches(name.as_str()) { Ok(name) } else { Err(collection_not_found(&name)) }
}

/// Creates a collection.
#[utoipa::path(
    post,
    path = "/v1/collections",
    tag = "gallery",
    request_body = CreateCollection,
    responses(
        (status = 201, description = "Created", body = CollectionView),
        (status = 400, description = "`invalid_body`, `invalid_collection`, `invalid_description`, `invalid_threshold`", body = crate::ErrorBody),
        (status = 409, description = "`collection_exists`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn create_collection(
    State(state): State<AppState>,
    caller: Caller,
    request: Result<Json<CreateCollection>, JsonRejection>,
) -> Result<(StatusCode, Json<CollectionView>), ApiError> {
    let request = body(request)?;
    let new = NewCollection {
        name: collection_name(&request.name)?,
        description: description(request.description)?,
        threshold: threshold(request.threshold)?,
        require_consent: request.require_consent.unwrap_or(state.settings.require_consent),
    };
    caller.may_use(&new.name)?;
    match state.store.create_collection(&new).await? {
        Some(created) => Ok((StatusCode::CREATED, Json(created))),
        None => Err(ApiError::new(ErrorCode::CollectionExists, format!("collection {} exists", new.name.as_str()))),
    }
}

/// Lists collections by name.
#[utoipa::path(
    get,
    path = "/v1/collections",
    tag = "gallery",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")
    ),
    responses(
        (status = 200, description = "A page of collections", body = CollectionPage),
        (status = 400, description = "`invalid_limit`, `invalid_cursor`, `unknown_field`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn list_collections(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<CollectionPage>, ApiError> {
    known_params(&query, &["cursor", "limit"])?;
    let (limit, after) = (limit(&query)?, name_cursor(&query)?);
    let collections = state.store.list_collections(after.as_deref(), limit, &caller.visibility()).await?;
    let next_cursor = next_name_cursor(&collections, limit, |c| &c.name);
    Ok(Json(CollectionPage { collections, next_cursor }))
}

/// One collection with its counts.
#[utoipa::path(
    get,
    path = "/v1/collections/{name}",
    tag = "gallery",
    params(("name" = String, Path, description = "The collection's name")),
    responses(
        (status = 200, description = "The collection", body = CollectionView),
        (status = 400, description = "`invalid_collection`", body = crate::ErrorBody),
        (status = 404, description = "`collection_not_found`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn get_collection(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<CollectionView>, ApiError> {
    let name = reachable(&caller, &name)?;
    state.store.get_collection(&name).await?.map(Json).ok_or_else(|| collection_not_found(&name))
}

/// Changes a collection's description, threshold or consent rule.
#[utoipa::path(
    patch,
    path = "/v1/collections/{name}",
    tag = "gallery",
    params(("name" = String, Path, description = "The collection's name")),
    request_body = UpdateCollection,
    responses(
        (status = 200, description = "The updated collection", body = CollectionView),
        (status = 400, description = "`invalid_body`, `invalid_collection`, `invalid_description`, `invalid_threshold`", body = crate::ErrorBody),
        (status = 404, description = "`collection_not_found`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn update_collection(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    request: Result<Json<UpdateCollection>, JsonRejection>,
) -> Result<Json<CollectionView>, ApiError> {
    let name = reachable(&caller, &name)?;
    let request = body(request)?;
    let patch = CollectionPatch {
        description: request.description.map(description).transpose()?,
        threshold: request.threshold.map(threshold).transpose()?,
        require_consent: request.require_consent,
    };
    state.store.update_collection(&name, &patch).await?.map(Json).ok_or_else(|| collection_not_found(&name))
}

/// Deletes a collection with all its subjects and faces, and cancels its
/// queued or running register jobs. Answers with the audit record.
#[utoipa::path(
    delete,
    path = "/v1/collections/{name}",
    tag = "gallery",
    params(("name" = String, Path, description = "The collection's name")),
    responses(
        (status = 200, description = "Deleted: what went", body = AuditEntry),
        (status = 400, description = "`invalid_collection`", body = crate::ErrorBody),
        (status = 404, description = "`collection_not_found`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn delete_collection(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<AuditEntry>, ApiError> {
    let name = reachable(&caller, &name)?;
    let deleted = state.store.delete_collection(&name, request_id(&headers)).await?;
    deleted.map(Json).ok_or_else(|| collection_not_found(&name))
}
