//! `POST /v1/batches` (an archive of labelled photos becomes one register job
//! per image, fed to the queue as room frees), `GET /v1/batches` (the list),
//! `GET /v1/batches/{id}`, its items, and cancel.

use std::collections::HashMap;

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use facerec_core::{BatchItemStatus, BatchItemView, BatchStatus, BatchView};
use facerec_store::{BatchCancel, BatchFilter, NewBatch};
use serde::Serialize;
use tracing::info;
use uuid::Uuid;

use crate::auth::Caller;
use crate::callback_url::callback_url_field;
use crate::intake::{self, Spooled};
use crate::routes::gallery::{
    collection_field, consent_field, consent_rule, id_cursor, limit, next_id_cursor, request_id,
};
use crate::routes::query::{known_params, parse};
use crate::upload::known_field;
use crate::{ApiError, AppState, ErrorCode};

/// The fields a batch form takes; any other is refused (`unknown_field`).
const BATCH_FIELDS: &[&str] = &["archive", "collection", "callback_url", "consent"];

/// A page of batches, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchPage {
    pub batches: Vec<BatchView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A page of a batch's items, in archive order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchItemPage {
    pub items: Vec<BatchItemView>,
    pub next_cursor: Option<String>,
}

/// Records the archive's entries as a batch of register jobs.
#[utoipa::path(
    post,
    path = "/v1/batches",
    tag = "batches",
    request_body(content = crate::routes::forms::BatchForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Recorded; its items are fed to the queue as room frees", body = BatchView,
         headers(("Location" = String, description = "`/v1/batches/{batch_id}`"))),
        (status = 400, description = "`invalid_multipart`, `unknown_field`, `duplicate_field`, `missing_archive`, `invalid_collection`, `invalid_consent`, `consent_required`, `invalid_callback_url`, `corrupt_archive`, `unsafe_archive_path`, `archive_too_many_entries`, `archive_bomb`, `manifest_too_large`, `empty_archive`", body = crate::ErrorBody),
        (status = 408, description = "`request_timeout`: the archive came in too slowly", body = crate::ErrorBody),
        (status = 413, description = "`archive_too_large`", body = crate::ErrorBody),
        (status = 415, description = "`unsupported_archive`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`server_busy` (no room to spool the archive, or every database connection busy), `database_unavailable` (with `Retry-After`)", body = crate::ErrorBody)
    )
)]
pub async fn create_batch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let settings = &state.settings;
    let mut multipart = multipart
        .map_err(|e| ApiError::new(ErrorCode::InvalidMultipart, format!("expected a multipart/form-data body: {e}")))?;
    let mut spooled: Option<Spooled> = None;
    let mut fields = HashMap::new();
    while let Some(field) = multipart.next_field().await.map_err(|e| intake::multipart_error(e, settings))? {
        let name = field.name().unwrap_or_default().to_owned();
        // Refused by its name, before its content is read: a misnamed archive
        // (`-F file=@photos.zip`) is told so, not that it is over a text field's size.
        known_field(&name, BATCH_FIELDS)?;
        if name == "archive" {
            if spooled.is_some() {
                return Err(ApiError::new(ErrorCode::DuplicateField, "the form has more than one archive"));
            }
            spooled = Some(intake::spool(field, settings).await?);
        } else {
            let value = intake::small_text(field, settings).await?;
            if fields.insert(name.clone(), value).is_some() {
                return Err(ApiError::new(ErrorCode::DuplicateField, format!("the form has field {name:?} twice")));
            }
        }
    }
    let spooled = spooled.ok_or_else(|| ApiError::new(ErrorCode::MissingArchive, "the form has no archive file"))?;
    let collection = collection_field(fields.get("collection").map(String::as_str))?;
    caller.may_use(&collection)?;
    let consent = consent_field(fields.get("consent").map(String::as_str))?;
    let create_collection = consent_rule(&state, &collection, consent.as_ref()).await?;
    let batch = NewBatch {
        id: Uuid::now_v7(),
        collection,
        consent,
        callback_url: callback_url_field(
            fields.get("callback_url").map(String::as_str),
            settings.webhook_allow_private,
        )?,
        request_id: request_id(&headers).map(str::to_owned),
        create_collection,
        api_key_id: caller.key_id(),
        // Kept with the batch and copied to each job fed from it, so those
        // jobs' spans join this upload's trace.
        traceparent: facerec_telemetry::current_traceparent(),
    };
    // Reading holds a chunk of entries in memory: a few batches at a time, after their upload.
    let _reading = state.admission.batch_reading().await;
    let mut writer = state.store.begin_batch(&batch).await?;
    let items = intake::read_into(&spooled, &mut writer, settings).await?;
    if items == 0 {
        return Err(ApiError::new(ErrorCode::EmptyArchive, "the archive has no files"));
    }
    writer.commit().await?;
    let archive_bytes = spooled.bytes;
    drop(spooled);
    let view = state.store.get_batch(batch.id).await?.ok_or_else(|| not_found(batch.id))?;
    info!(batch_id = %batch.id, items, archive_bytes, collection = %view.collection, "batch recorded");
    let location = HeaderValue::from_str(&format!("/v1/batches/{}", batch.id)).expect("a UUID path is a valid header");
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(view)).into_response())
}

/// The batches the caller may see, newest first, optionally only those in one state.
#[utoipa::path(
    get,
    path = "/v1/batches",
    tag = "batches",
    params(
        ("status" = Option<BatchStatus>, Query, description = "Only batches in this state"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")
    ),
    responses(
        (status = 200, description = "A page of batches", body = BatchPage),
        (status = 400, description = "`invalid_status`, `invalid_limit`, `invalid_cursor`, `unknown_field`", body = crate::ErrorBody),
        (status = 500, description = "`internal_error`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn list_batches(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<BatchPage>, ApiError> {
    known_params(&query, &["status", "cursor", "limit"])?;
    let filter = BatchFilter {
        status: parse(&query, "status", ErrorCode::InvalidStatus, BatchStatus::parse)?,
        before: id_cursor(&query)?,
        visible: caller.visibility(),
    };
    let limit = limit(&query)?;
    let batches = state.store.list_batches(&filter, limit).await?;
    let next_cursor = next_id_cursor(&batches, limit, |b| b.batch_id);
    Ok(Json(BatchPage { batches, next_cursor }))
}

/// The batch with its counts.
#[utoipa::path(
    get,
    path = "/v1/batches/{id}",
    tag = "batches",
    params(("id" = Uuid, Path, description = "The batch id")),
    responses(
        (status = 200, description = "The batch", body = BatchView),
        (status = 400, description = "`invalid_batch_id`", body = crate::ErrorBody),
        (status = 404, description = "`batch_not_found`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn get_batch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<BatchView>, ApiError> {
    let id = batch_id(&id)?;
    let batch = state.store.get_batch(id).await?.filter(|b| caller.reaches(&b.collection));
    batch.map(Json).ok_or_else(|| not_found(id))
}

/// Finds the batch, if the caller may see it.
async fn visible_batch(state: &AppState, caller: &Caller, id: Uuid) -> Result<(), ApiError> {
    match state.store.batch_collection(id).await? {
        Some(collection) if caller.reaches(&collection) => Ok(()),
        _ => Err(not_found(id)),
    }
}

/// The batch's items in archive order, optionally only those in one state.
#[utoipa::path(
    get,
    path = "/v1/batches/{id}/items",
    tag = "batches",
    params(
        ("id" = Uuid, Path, description = "The batch id"),
        ("status" = Option<BatchItemStatus>, Query, description = "Only items in this state"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")
    ),
    responses(
        (status = 200, description = "A page of items", body = BatchItemPage),
        (status = 400, description = "`invalid_batch_id`, `invalid_status`, `invalid_limit`, `invalid_cursor`, `unknown_field`", body = crate::ErrorBody),
        (status = 404, description = "`batch_not_found`", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn list_batch_items(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<BatchItemPage>, ApiError> {
    known_params(&query, &["status", "cursor", "limit"])?;
    let id = batch_id(&id)?;
    let status = parse(&query, "status", ErrorCode::InvalidStatus, BatchItemStatus::parse)?;
    let after = parse(&query, "cursor", ErrorCode::InvalidCursor, |v| v.parse::<i32>().ok().filter(|n| *n >= 0))?;
    let limit = limit(&query)?;
    // Not the batch view: its counts read every item.
    visible_batch(&state, &caller, id).await?;
    let page = state.store.list_batch_items(id, status, after, limit).await?;
    let next_cursor = (page.len() == limit as usize).then(|| page.last().map(|(seq, _)| seq.to_string())).flatten();
    Ok(Json(BatchItemPage { items: page.into_iter().map(|(_, item)| item).collect(), next_cursor }))
}

/// Cancels the batch: items not yet run are canceled, items running finish.
#[utoipa::path(
    post,
    path = "/v1/batches/{id}/cancel",
    tag = "batches",
    params(("id" = Uuid, Path, description = "The batch id")),
    responses(
        (status = 200, description = "Canceled", body = BatchView),
        (status = 400, description = "`invalid_batch_id`", body = crate::ErrorBody),
        (status = 404, description = "`batch_not_found`", body = crate::ErrorBody),
        (status = 409, description = "`batch_not_cancelable`: it has ended", body = crate::ErrorBody),
        (status = 503, description = "`database_unavailable`", body = crate::ErrorBody)
    )
)]
pub async fn cancel_batch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<BatchView>, ApiError> {
    let id = batch_id(&id)?;
    visible_batch(&state, &caller, id).await?;
    match state.store.cancel_batch(id).await? {
        BatchCancel::Canceled(view) => {
            state.admission.forget_queued();
            info!(batch_id = %id, "batch canceled");
            Ok(Json(view))
        }
        BatchCancel::NotRunning(view) => Err(ApiError::new(
            ErrorCode::BatchNotCancelable,
            format!("batch {id} has ended ({})", view.status.as_str()),
        )),
        BatchCancel::NotFound => Err(not_found(id)),
    }
}

fn batch_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.trim().parse().map_err(|_| ApiError::new(ErrorCode::InvalidBatchId, "the batch id must be a UUID"))
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::new(ErrorCode::BatchNotFound, format!("no batch has id {id}"))
}
