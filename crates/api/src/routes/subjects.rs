//! `/v1/collections/{name}/subjects`, `/v1/collections/{name}/faces`,
//! `/v1/faces/{id}` and `/v1/audit`: reading and correcting the gallery, and
//! deleting what a person asks to be forgotten.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use facerec_core::{AuditEntry, CollectionName, FaceView, SubjectName, SubjectSummary, SubjectView};
use facerec_store::RenameOutcome;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::routes::collections::reachable;
use crate::routes::gallery::{
    body, collection_name, collection_not_found, face_id, face_not_found, id_cursor, limit, name_cursor,
    next_id_cursor, next_name_cursor, request_id, subject_name, subject_not_found,
};
use crate::routes::query::{known_params, parse};
use crate::{ApiError, AppState, ErrorCode};

/// A subject path's collection and subject; a collection the caller does not
/// reach answers as a missing subject, as a collection that does not exist does.
fn subject_path(caller: &Caller, name: &str, subject: &str) -> Result<(CollectionName, SubjectName), ApiError> {
    let (collection, subject) = (collection_name(name)?, subject_name(subject)?);
    if caller.reaches(collection.as_str()) {
        Ok((collection, subject))
    } else {
        Err(subject_not_found(&collection, &subject))
    }
}

/// A page of subjects, by name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubjectPage {
    pub subjects: Vec<SubjectSummary>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A page of faces, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FacePage {
    pub faces: Vec<FaceView>,
    pub next_cursor: Option<String>,
}

/// A page of audit records, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

/// Body of `PATCH …/subjects/{subject}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameSubject {
    /// The new name: 1–128 characters, no control characters.
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
}

/// Lists a collection's subjects by name, optionally those starting with `prefix`.
#[utoipa::path(
    get,
    path = "/v1/collections/{name}/subjects",
    tag = "gallery",
    params(
        ("name" = String, Path, description = "The collection's name"),
        ("prefix" = Option<String>, Query, description = "Only subjects whose names start with this"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")
    ),
    responses(
        (status = 200, description = "A page of subjects", body = SubjectPage),
        (status = 400, description = "`invalid_collection`, `invalid_prefix`, `invalid_limit`, `invalid_cursor`, `unknown_field`", body = crate::ErrorBody),
        (status = 404, description = "`collection_not_found`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn list_subjects(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<SubjectPage>, ApiError> {
    known_params(&query, &["prefix", "cursor", "limit"])?;
    let collection = reachable(&caller, &name)?;
    let prefix = parse(&query, "prefix", ErrorCode::InvalidPrefix, |v| {
        ((1..=128).contains(&v.chars().count()) && !v.chars().any(char::is_control)).then(|| v.to_owned())
    })?;
    let (limit, after) = (limit(&query)?, name_cursor(&query)?);
    let subjects = state
        .store
        .list_subjects(&collection, prefix.as_deref(), after.as_deref(), limit)
        .await?
        .ok_or_else(|| collection_not_found(&collection))?;
    let next_cursor = next_name_cursor(&subjects, limit, |s| &s.name);
    Ok(Json(SubjectPage { subjects, next_cursor }))
}

/// One subject with all its faces and its consent reference.
#[utoipa::path(
    get,
    path = "/v1/collections/{name}/subjects/{subject}",
    tag = "gallery",
    params(
        ("name" = String, Path, description = "The collection's name"),
        ("subject" = String, Path, description = "The subject's name, percent-encoded (`/` as `%2F`)")
    ),
    responses(
        (status = 200, description = "The subject", body = SubjectView),
        (status = 400, description = "`invalid_collection`, `invalid_subject`", body = crate::ErrorBody),
        (status = 404, description = "`subject_not_found`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn get_subject(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, subject)): Path<(String, String)>,
) -> Result<Json<SubjectView>, ApiError> {
    let (collection, subject) = subject_path(&caller, &name, &subject)?;
    let found = state.store.get_subject(&collection, &subject).await?;
    found.map(Json).ok_or_else(|| subject_not_found(&collection, &subject))
}

/// Renames a subject; its faces follow.
#[utoipa::path(
    patch,
    path = "/v1/collections/{name}/subjects/{subject}",
    tag = "gallery",
    params(
        ("name" = String, Path, description = "The collection's name"),
        ("subject" = String, Path, description = "The subject's name, percent-encoded")
    ),
    request_body = RenameSubject,
    responses(
        (status = 200, description = "The renamed subject", body = SubjectView),
        (status = 400, description = "`invalid_body`, `invalid_collection`, `invalid_subject`", body = crate::ErrorBody),
        (status = 404, description = "`subject_not_found`", body = crate::ErrorBody),
        (status = 409, description = "`subject_exists`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn rename_subject(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, subject)): Path<(String, String)>,
    request: Result<Json<RenameSubject>, JsonRejection>,
) -> Result<Json<SubjectView>, ApiError> {
    let (collection, subject) = subject_path(&caller, &name, &subject)?;
    let new_name = subject_name(&body(request)?.name)?;
    match state.store.rename_subject(&collection, &subject, &new_name).await? {
        RenameOutcome::Renamed => {}
        RenameOutcome::NotFound => return Err(subject_not_found(&collection, &subject)),
        RenameOutcome::NameTaken => {
            let message = format!("collection {} already has a subject {:?}", collection.as_str(), new_name.as_str());
            return Err(ApiError::new(ErrorCode::SubjectExists, message));
        }
    }
    let renamed = state.store.get_subject(&collection, &new_name).await?;
    renamed.map(Json).ok_or_else(|| subject_not_found(&collection, &new_name))
}

/// Deletes a subject and all its faces (how consent is withdrawn), and
/// cancels its queued or running register jobs. Answers with the audit record.
#[utoipa::path(
    delete,
    path = "/v1/collections/{name}/subjects/{subject}",
    tag = "gallery",
    params(
        ("name" = String, Path, description = "The collection's name"),
        ("subject" = String, Path, description = "The subject's name, percent-encoded")
    ),
    responses(
        (status = 200, description = "Deleted: what went", body = AuditEntry),
        (status = 400, description = "`invalid_collection`, `invalid_subject`", body = crate::ErrorBody),
        (status = 404, description = "`subject_not_found`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn delete_subject(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((name, subject)): Path<(String, String)>,
) -> Result<Json<AuditEntry>, ApiError> {
    let (collection, subject) = subject_path(&caller, &name, &subject)?;
    let deleted = state.store.delete_subject(&collection, &subject, request_id(&headers)).await?;
    deleted.map(Json).ok_or_else(|| subject_not_found(&collection, &subject))
}

/// Lists a collection's faces, oldest first, optionally of one subject.
#[utoipa::path(
    get,
    path = "/v1/collections/{name}/faces",
    tag = "gallery",
    params(
        ("name" = String, Path, description = "The collection's name"),
        ("subject" = Option<String>, Query, description = "Only this subject's faces"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")
    ),
    responses(
        (status = 200, description = "A page of faces", body = FacePage),
        (status = 400, description = "`invalid_collection`, `invalid_subject`, `invalid_limit`, `invalid_cursor`, `unknown_field`", body = crate::ErrorBody),
        (status = 404, description = "`collection_not_found`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn list_faces(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<FacePage>, ApiError> {
    known_params(&query, &["subject", "cursor", "limit"])?;
    let collection = reachable(&caller, &name)?;
    let subject = query.get("subject").map(|s| subject_name(s)).transpose()?;
    let (limit, after) = (limit(&query)?, id_cursor(&query)?);
    let faces = state
        .store
        .list_faces(&collection, subject.as_ref(), after, limit)
        .await?
        .ok_or_else(|| collection_not_found(&collection))?;
    let next_cursor = next_id_cursor(&faces, limit, |f| f.face_id);
    Ok(Json(FacePage { faces, next_cursor }))
}

/// One stored face (never its embedding).
#[utoipa::path(
    get,
    path = "/v1/faces/{id}",
    tag = "gallery",
    params(("id" = String, Path, format = Uuid, description = "The face id (a register result's `face_id`)")),
    responses(
        (status = 200, description = "The face", body = FaceView),
        (status = 400, description = "`invalid_face_id`", body = crate::ErrorBody),
        (status = 404, description = "`face_not_found`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn get_face(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<FaceView>, ApiError> {
    let id = face_id(&id)?;
    state
        .store
        .get_face(id)
        .await?
        .filter(|f| caller.reaches(&f.collection))
        .map(Json)
        .ok_or_else(|| face_not_found(id))
}

/// Deletes one face; its subject stays, with one face fewer.
#[utoipa::path(
    delete,
    path = "/v1/faces/{id}",
    tag = "gallery",
    params(("id" = String, Path, format = Uuid, description = "The face id")),
    responses(
        (status = 200, description = "Deleted: what went", body = AuditEntry),
        (status = 400, description = "`invalid_face_id`", body = crate::ErrorBody),
        (status = 404, description = "`face_not_found`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn delete_face(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<AuditEntry>, ApiError> {
    let id = face_id(&id)?;
    // A face never changes collection, so checking first and deleting next is safe.
    if caller.grant().is_some() && !state.store.get_face(id).await?.is_some_and(|f| caller.reaches(&f.collection)) {
        return Err(face_not_found(id));
    }
    state.store.delete_face(id, request_id(&headers)).await?.map(Json).ok_or_else(|| face_not_found(id))
}

/// The record of every deletion from the gallery, newest first, optionally
/// of one collection only.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "gallery",
    params(
        ("collection" = Option<String>, Query, description = "Only this collection's records (also once it is deleted)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")
    ),
    responses(
        (status = 200, description = "A page of audit records", body = AuditPage),
        (status = 400, description = "`invalid_collection`, `invalid_limit`, `invalid_cursor`, `unknown_field`", body = crate::ErrorBody),
        (status = 404, description = "`collection_not_found`: no collection of this name exists or ever had a record", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<AuditPage>, ApiError> {
    known_params(&query, &["collection", "cursor", "limit"])?;
    let collection = query.get("collection").map(|name| reachable(&caller, name)).transpose()?;
    let (limit, before) = (limit(&query)?, id_cursor(&query)?);
    let entries = state.store.list_audit(collection.as_ref(), before, limit, &caller.visibility()).await?;
    // A misspelt name must not read as "nothing was deleted there" (a name
    // never used has no records, so only an empty page is looked into); a
    // deleted collection's records stay readable.
    if let Some(collection) = &collection
        && entries.is_empty()
        && !state.store.collection_known(collection).await?
    {
        return Err(collection_not_found(collection));
    }
    let next_cursor = next_id_cursor(&entries, limit, |e| e.id);
    Ok(Json(AuditPage { entries, next_cursor }))
}
