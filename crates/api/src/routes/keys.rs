//! `/v1/keys`: create, list, read, change and delete API keys. A key with
//! `keys.manage` sees and manages only keys whose rights are within its own,
//! and can never make or widen a key beyond them.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use facerec_core::{AccessError, Action, Grant, KeyScope, check_change, check_grant};
use facerec_store::{ApiKeyRecord, NewApiKey};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Caller;
use crate::routes::gallery::{body, id_cursor, limit, next_id_cursor};
use crate::routes::query::known_params;
use crate::{ApiError, AppState, ErrorCode};

/// Body of `POST /v1/keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for: 1–128 characters.
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
    /// Actions the key may do (`*`: all).
    #[schema(value_type = Vec<Action>, min_items = 1, max_items = 100)]
    pub actions: Vec<String>,
    /// Collections it may act on: names, name prefixes ending in `*` (`acme-*`), or `*`.
    #[schema(min_items = 1, max_items = 100)]
    pub collections: Vec<String>,
    /// When the key stops working (RFC 3339, in the future); never when absent.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// Body of `PATCH /v1/keys/{id}`: absent fields stay.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    #[schema(min_length = 1, max_length = 128)]
    pub name: Option<String>,
    #[schema(value_type = Option<Vec<Action>>, min_items = 1, max_items = 100)]
    pub actions: Option<Vec<String>>,
    #[schema(min_items = 1, max_items = 100)]
    pub collections: Option<Vec<String>>,
}

/// A key, without the key itself (it is shown once, when made).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: Uuid,
    pub name: String,
    /// The key's first characters (`frk_` and 8 hex digits), to tell keys apart.
    pub key_prefix: String,
    pub actions: Vec<Action>,
    pub collections: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `201` answer of `POST /v1/keys`: the only time the key is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    pub id: Uuid,
    /// The key: send it as `Authorization: Bearer <key>`. Stored only as a hash; it cannot be shown again.
    pub key: String,
    pub name: String,
    pub key_prefix: String,
    pub actions: Vec<Action>,
    pub collections: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Present when the api runs open (no master key): the key then limits nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Why a key made on an open api is no protection (a client may show it; the CLI does).
const OPEN_MODE_WARNING: &str = "this api runs open (no FACEREC_MASTER_KEY): every request is allowed with or \
                                 without a key, so this key limits nothing; once a master key is set it works only \
                                 if FACEREC_KEY_PEPPER was set when it was made and still is";

/// A page of keys, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyPage {
    pub keys: Vec<KeyView>,
    pub next_cursor: Option<String>,
}

impl From<ApiKeyRecord> for KeyView {
    fn from(k: ApiKeyRecord) -> Self {
        Self {
            id: k.id,
            name: k.name,
            key_prefix: k.key_prefix,
            actions: k.grant.actions().to_vec(),
            collections: k.grant.collections().iter().map(ToString::to_string).collect(),
            expires_at: k.expires_at,
            created_at: k.created_at,
            updated_at: k.updated_at,
        }
    }
}

fn key_name(raw: String) -> Result<String, ApiError> {
    let n = raw.chars().count();
    if !(1..=128).contains(&n) || raw.trim().is_empty() || raw.chars().any(char::is_control) {
        let message = "name must be 1 to 128 characters without control characters";
        return Err(ApiError::new(ErrorCode::InvalidKeyName, message));
    }
    Ok(raw)
}

fn grant(actions: &[String], collections: &[String]) -> Result<Grant, ApiError> {
    Grant::parse(actions, collections).map_err(|e| {
        let code = match e {
            AccessError::UnknownAction(_) | AccessError::NoActions => ErrorCode::InvalidActions,
            AccessError::TooMany if actions.len() > collections.len() => ErrorCode::InvalidActions,
            AccessError::BadPattern(_) | AccessError::NoCollections | AccessError::TooMany => {
                ErrorCode::InvalidCollectionPatterns
            }
        };
        ApiError::new(code, e.to_string())
    })
}

fn key_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::new(ErrorCode::InvalidKeyId, "the key id must be a UUID"))
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::KeyNotFound, "no key has this id")
}

/// The grant rules ([`check_grant`]) for a key as it will be once made or
/// changed: the same for `POST` and `PATCH`, so neither can widen a key
/// beyond the caller's rights or lifetime.
fn may_grant(caller: &Caller, resulting: KeyScope<'_>) -> Result<(), ApiError> {
    check_grant(granter(caller), resulting).map_err(|e| ApiError::new(ErrorCode::Forbidden, e.to_string()))
}

/// The caller's own rights and lifetime; `None` for the master key and an open api.
fn granter(caller: &Caller) -> Option<KeyScope<'_>> {
    match caller {
        Caller::Key(own) => Some(KeyScope { grant: &own.grant, expires_at: own.expires_at }),
        Caller::Open | Caller::Master => None,
    }
}

/// Whether the caller may see (and so manage) this key.
fn manages(caller: &Caller, key: &ApiKeyRecord) -> bool {
    caller.grant().is_none_or(|own| own.includes(&key.grant))
}

/// Creates an API key. The answer is the only time the key is shown.
#[utoipa::path(
    post,
    path = "/v1/keys",
    tag = "keys",
    request_body = CreateKey,
    responses(
        (status = 201, description = "Created; `key` is shown only now (`Cache-Control: no-store`)", body = CreatedKey,
         headers(("Location" = String, description = "`/v1/keys/{id}`"), ("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, description = "`invalid_body`, `invalid_key_name`, `invalid_actions`, `invalid_collection_patterns`, `invalid_expires_at`", body = crate::ErrorBody),
        (status = 403, description = "`forbidden`: the key would hold rights beyond the caller's, or (caller expiring) outlive it", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    request: Result<Json<CreateKey>, JsonRejection>,
) -> Result<Response, ApiError> {
    let request = body(request)?;
    let name = key_name(request.name)?;
    let grant = grant(&request.actions, &request.collections)?;
    let expires_at = request
        .expires_at
        .map(|raw| {
            DateTime::parse_from_rfc3339(&raw)
                .ok()
                .map(|t| t.with_timezone(&Utc))
                .filter(|t| *t > Utc::now())
                .ok_or_else(|| {
                    ApiError::new(ErrorCode::InvalidExpiresAt, "expires_at must be an RFC 3339 time in the future")
                })
        })
        .transpose()?;
    may_grant(&caller, KeyScope { grant: &grant, expires_at })?;
    let issued = state.auth.keyring.issue().map_err(|e| ApiError::internal(&e))?;
    let new = NewApiKey {
        id: Uuid::now_v7(),
        name,
        key_hash: issued.hash.to_vec(),
        key_prefix: issued.shown_prefix,
        grant,
        expires_at,
    };
    let stored = state.store.insert_api_key(&new).await?;
    tracing::info!(key_id = %stored.id, by = ?caller.key_id(), "api key created");
    let view = KeyView::from(stored);
    let created = CreatedKey {
        id: view.id,
        key: issued.key.expose_secret().to_owned(),
        name: view.name,
        key_prefix: view.key_prefix,
        actions: view.actions,
        collections: view.collections,
        expires_at: view.expires_at,
        created_at: view.created_at,
        warning: matches!(caller, Caller::Open).then(|| OPEN_MODE_WARNING.to_owned()),
    };
    let location = HeaderValue::from_str(&format!("/v1/keys/{}", created.id)).expect("a UUID path is a valid header");
    // The only answer that carries a key: no cache (a proxy's, a browser's) may keep it.
    let no_store = (header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((StatusCode::CREATED, [(header::LOCATION, location), no_store], Json(created)).into_response())
}

/// Lists the keys the caller may manage, oldest first.
#[utoipa::path(
    get,
    path = "/v1/keys",
    tag = "keys",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")
    ),
    responses(
        (status = 200, description = "A page of keys", body = KeyPage),
        (status = 400, description = "`invalid_limit`, `invalid_cursor`, `unknown_field`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<KeyPage>, ApiError> {
    known_params(&query, &["cursor", "limit"])?;
    let (limit, after) = (limit(&query)?, id_cursor(&query)?);
    let visible = state.store.list_api_keys().await?.into_iter().filter(|k| manages(&caller, k));
    let mut visible: Vec<ApiKeyRecord> = visible.collect();
    if let Some(after) = after {
        let start = visible.iter().position(|k| k.id == after).map_or(visible.len(), |i| i + 1);
        visible.drain(..start);
    }
    visible.truncate(limit as usize);
    let keys: Vec<KeyView> = visible.into_iter().map(KeyView::from).collect();
    let next_cursor = next_id_cursor(&keys, limit, |k| k.id);
    Ok(Json(KeyPage { keys, next_cursor }))
}

async fn managed_key(state: &AppState, caller: &Caller, id: &str) -> Result<ApiKeyRecord, ApiError> {
    let key = state.store.get_api_key(key_id(id)?).await?.ok_or_else(not_found)?;
    if manages(caller, &key) { Ok(key) } else { Err(not_found()) }
}

/// One key (never the key itself).
#[utoipa::path(
    get,
    path = "/v1/keys/{id}",
    tag = "keys",
    params(("id" = String, Path, format = Uuid, description = "The key's id")),
    responses(
        (status = 200, description = "The key", body = KeyView),
        (status = 400, description = "`invalid_key_id`", body = crate::ErrorBody),
        (status = 404, description = "`key_not_found`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn get_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    Ok(Json(managed_key(&state, &caller, &id).await?.into()))
}

/// Renames a key or changes its rights; takes effect on its next request.
/// The key as changed must pass the same grant rules as a new one: within
/// the caller's rights, and, when the caller expires, not outliving it.
#[utoipa::path(
    patch,
    path = "/v1/keys/{id}",
    tag = "keys",
    params(("id" = String, Path, format = Uuid, description = "The key's id")),
    request_body = UpdateKey,
    responses(
        (status = 200, description = "The key as changed", body = KeyView),
        (status = 400, description = "`invalid_key_id`, `invalid_body`, `invalid_key_name`, `invalid_actions`, `invalid_collection_patterns`", body = crate::ErrorBody),
        (status = 403, description = "`forbidden`: the key as changed would hold rights beyond the caller's, or (caller expiring) outlive it", body = crate::ErrorBody),
        (status = 404, description = "`key_not_found`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn update_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    request: Result<Json<UpdateKey>, JsonRejection>,
) -> Result<Json<KeyView>, ApiError> {
    let key = managed_key(&state, &caller, &id).await?;
    let request = body(request)?;
    let name = request.name.map(key_name).transpose()?;
    let changed = match (&request.actions, &request.collections) {
        (None, None) => None,
        (actions, collections) => {
            let (own_actions, own_collections) = key.grant.to_wire();
            Some(grant(actions.as_ref().unwrap_or(&own_actions), collections.as_ref().unwrap_or(&own_collections))?)
        }
    };
    // Judged on the whole key after the change (a PATCH cannot move `expires_at`).
    let after = KeyScope { grant: changed.as_ref().unwrap_or(&key.grant), expires_at: key.expires_at };
    check_change(granter(&caller), &key.grant, after)
        .map_err(|e| ApiError::new(ErrorCode::Forbidden, e.to_string()))?;
    let updated = state.store.update_api_key(key.id, name.as_deref(), changed.as_ref()).await?;
    tracing::info!(key_id = %key.id, by = ?caller.key_id(), "api key changed");
    updated.map(|k| Json(k.into())).ok_or_else(not_found)
}

/// Deletes a key: its next request is refused, on every api instance.
#[utoipa::path(
    delete,
    path = "/v1/keys/{id}",
    tag = "keys",
    params(("id" = String, Path, format = Uuid, description = "The key's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`invalid_key_id`", body = crate::ErrorBody),
        (status = 404, description = "`key_not_found`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn delete_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key = managed_key(&state, &caller, &id).await?;
    if !state.store.delete_api_key(key.id).await? {
        return Err(not_found());
    }
    tracing::info!(key_id = %key.id, by = ?caller.key_id(), "api key deleted");
    Ok(StatusCode::NO_CONTENT)
}
