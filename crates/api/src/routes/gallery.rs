//! What the gallery routes share: parsing names and ids from the path, page
//! sizes and cursors from the query, and JSON bodies.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use facerec_core::{CollectionName, CollectionView, ConsentRef, SubjectName, Threshold};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::routes::query::parse;
use crate::{ApiError, AppState, ErrorCode, Settings};

pub const DEFAULT_LIMIT: u32 = 20;

pub fn collection_name(raw: &str) -> Result<CollectionName, ApiError> {
    CollectionName::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidCollection, e.to_string()))
}

/// A form's `collection` field; `default` when absent.
pub fn collection_field(raw: Option<&str>) -> Result<CollectionName, ApiError> {
    raw.map_or(Ok(CollectionName::default()), collection_name)
}

/// The threshold a request that names none gets: the collection's own, else the server's default.
pub fn collection_threshold(collection: Option<&CollectionView>, settings: &Settings) -> Threshold {
    collection.and_then(|c| c.threshold).and_then(Threshold::new).unwrap_or(settings.default_threshold)
}

/// A form's optional `consent` field.
pub fn consent_field(raw: Option<&str>) -> Result<Option<ConsentRef>, ApiError> {
    let consent = raw.map(ConsentRef::parse).transpose();
    consent.map_err(|e| ApiError::new(ErrorCode::InvalidConsent, e.to_string()))
}

/// Registering into `collection`: refuses a missing consent reference where
/// the collection (or, for a new one, the server's default) requires one.
/// Returns `Some(require_consent)` when the collection does not exist yet and
/// is to be created with the registration; an existing one is left alone (its
/// row may be locked by a register storing its face right now).
pub async fn consent_rule(
    state: &AppState,
    collection: &CollectionName,
    consent: Option<&ConsentRef>,
) -> Result<Option<bool>, ApiError> {
    let existing = state.store.get_collection(collection).await?;
    let required = existing.as_ref().map_or(state.settings.require_consent, |c| c.require_consent);
    if required && consent.is_none() {
        let message = format!("collection {} requires a consent reference (the `consent` field)", collection.as_str());
        return Err(ApiError::new(ErrorCode::ConsentRequired, message));
    }
    Ok(existing.is_none().then_some(state.settings.require_consent))
}

pub fn subject_name(raw: &str) -> Result<SubjectName, ApiError> {
    SubjectName::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidSubject, e.to_string()))
}

pub fn face_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.trim().parse().map_err(|_| ApiError::new(ErrorCode::InvalidFaceId, "the face id must be a UUID"))
}

pub fn collection_not_found(name: &CollectionName) -> ApiError {
    ApiError::new(ErrorCode::CollectionNotFound, format!("no collection is named {}", name.as_str()))
}

pub fn subject_not_found(collection: &CollectionName, subject: &SubjectName) -> ApiError {
    let message = format!("collection {} has no subject {:?}", collection.as_str(), subject.as_str());
    ApiError::new(ErrorCode::SubjectNotFound, message)
}

pub fn face_not_found(id: Uuid) -> ApiError {
    ApiError::new(ErrorCode::FaceNotFound, format!("no face has id {id}"))
}

/// The body, or `400 invalid_body` saying what is wrong with it.
pub fn body<T: DeserializeOwned>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(t)| t).map_err(|e| ApiError::new(ErrorCode::InvalidBody, e.body_text()))
}

/// `limit`: 1–100, default 20.
pub fn limit(query: &HashMap<String, String>) -> Result<u32, ApiError> {
    let limit = parse(query, "limit", ErrorCode::InvalidLimit, |v| v.parse().ok().filter(|n| (1..=100).contains(n)))?;
    Ok(limit.unwrap_or(DEFAULT_LIMIT))
}

/// A cursor over names: the last name of the previous page, hex-encoded so
/// that any name travels safely in a query string.
pub fn name_cursor(query: &HashMap<String, String>) -> Result<Option<String>, ApiError> {
    // PostgreSQL text cannot hold NUL, and no name has control characters.
    let name = |b: Vec<u8>| String::from_utf8(b).ok().filter(|s| !s.chars().any(char::is_control));
    parse(query, "cursor", ErrorCode::InvalidCursor, |v| hex::decode(v).ok().and_then(name))
}

pub fn next_name_cursor<T>(page: &[T], limit: u32, name: impl Fn(&T) -> &str) -> Option<String> {
    (page.len() == limit as usize).then(|| page.last().map(|last| hex::encode(name(last)))).flatten()
}

/// A cursor over ids (faces, audit records): the last id of the previous page.
pub fn id_cursor(query: &HashMap<String, String>) -> Result<Option<Uuid>, ApiError> {
    parse(query, "cursor", ErrorCode::InvalidCursor, |v| v.parse().ok())
}

pub fn next_id_cursor<T>(page: &[T], limit: u32, id: impl Fn(&T) -> Uuid) -> Option<String> {
    (page.len() == limit as usize).then(|| page.last().map(|last| id(last).to_string())).flatten()
}

/// Deserialises a field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// The request id of the request, for the audit log.
pub fn request_id(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get("x-request-id").and_then(|v| v.to_str().ok())
}
