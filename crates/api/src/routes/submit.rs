//! `POST /v1/register`, `/v1/recognize`, `/v1/embed` and `/v1/verify`: parse
//! the form, record the job with its input, enqueue it, answer `202`.

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use facerec_core::{
    CollectionName, CollectionView, EmbedParams, JobId, JobKind, JobParams, JobStatus, MaxFaces, ParamError,
    RecognizeParams, RegisterParams, Threshold, TopK, VerifyParams, VerifyTarget,
};
use facerec_store::{NewJob, Submitted};
use tracing::{Instrument, error, info};

use crate::auth::Caller;
use crate::callback_url::callback_url_field;
use crate::routes::forms::{EmbedForm, RecognizeForm, RegisterForm, SubmitErrors, VerifyForm};
use crate::routes::gallery::{self, collection_field, collection_not_found, consent_field, consent_rule, subject_name};
use crate::upload::Form;
use crate::{ApiError, AppState, ErrorCode};

/// The fields each form takes; any other is refused (`unknown_field`).
const REGISTER_FIELDS: &[&str] = &["image", "subject", "collection", "consent", "callback_url"];
const RECOGNIZE_FIELDS: &[&str] = &["image", "collection", "top_k", "threshold", "max_faces", "callback_url"];
const EMBED_FIELDS: &[&str] = &["image", "max_faces", "callback_url"];
const VERIFY_FIELDS: &[&str] = &["image", "image2", "subject", "collection", "face_id", "threshold", "callback_url"];

/// `202 Accepted` body of every submission; the `Location` header names the job.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub job_id: JobId,
    pub kind: JobKind,
    /// Always `queued`.
    pub status: JobStatus,
}

/// Registers the one face in the photo as `subject` (a job).
#[utoipa::path(
    post,
    path = "/v1/register",
    tag = "jobs",
    request_body(content = RegisterForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Recorded and queued; poll the `Location`", body = Accepted,
         headers(("Location" = String, description = "`/v1/jobs/{job_id}`"))),
        SubmitErrors
    )
)]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let form = Form::read(multipart, &state.settings, REGISTER_FIELDS).await?;
    let subject =
        form.text("subject").ok_or_else(|| ApiError::new(ErrorCode::MissingSubject, "the form has no subject"))?;
    let subject = subject_name(subject)?;
    let collection = collection(&form)?;
    caller.may_use(&collection)?;
    let consent = consent_field(form.text("consent"))?;
    let create_collection = consent_rule(&state, &collection, consent.as_ref()).await?;
    let params = RegisterParams { subject, collection, consent };
    submit(&state, &caller, &headers, form, JobParams::Register(params), create_collection).await
}

/// Matches every face in the photo against the collection (a job).
#[utoipa::path(
    post,
    path = "/v1/recognize",
    tag = "jobs",
    request_body(content = RecognizeForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Recorded and queued; poll the `Location`", body = Accepted,
         headers(("Location" = String, description = "`/v1/jobs/{job_id}`"))),
        SubmitErrors
    )
)]
pub async fn recognize(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let form = Form::read(multipart, &state.settings, RECOGNIZE_FIELDS).await?;
    let top_k = match form.text("top_k") {
        Some(v) => TopK::parse(v).map_err(|e| invalid_param(ErrorCode::InvalidTopK, e))?,
        None => TopK::DEFAULT,
    };
    let (asked, max_faces) = (asked_threshold(&form)?, max_faces(&form)?);
    let collection = collection(&form)?;
    caller.may_use(&collection)?;
    // A misspelt collection must not look like "nobody known" (see `existing_collection`).
    let own = existing_collection(&state, &collection).await?;
    let threshold = threshold(asked, Some(&own), &state);
    let params = RecognizeParams { collection, top_k, threshold, max_faces };
    submit(&state, &caller, &headers, form, JobParams::Recognize(params), None).await
}

/// Returns the embedding of every face in the photo (a job); stores no face.
#[utoipa::path(
    post,
    path = "/v1/embed",
    tag = "jobs",
    request_body(content = EmbedForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Recorded and queued; poll the `Location`", body = Accepted,
         headers(("Location" = String, description = "`/v1/jobs/{job_id}`"))),
        SubmitErrors
    )
)]
pub async fn embed(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let form = Form::read(multipart, &state.settings, EMBED_FIELDS).await?;
    let params = EmbedParams { max_faces: max_faces(&form)? };
    submit(&state, &caller, &headers, form, JobParams::Embed(params), None).await
}

/// Compares the photo's largest usable face with a second photo's, a
/// subject's or a stored face's (a job).
#[utoipa::path(
    post,
    path = "/v1/verify",
    tag = "jobs",
    request_body(content = VerifyForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Recorded and queued; poll the `Location`", body = Accepted,
         headers(("Location" = String, description = "`/v1/jobs/{job_id}`"))),
        SubmitErrors
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let form = Form::read(multipart, &state.settings, VERIFY_FIELDS).await?;
    let targets = [form.image2.is_some(), form.text("subject").is_some(), form.text("face_id").is_some()];
    if targets.iter().filter(|&&t| t).count() != 1 {
        let message = "give exactly one of image2 (a second photo), subject (with collection) and face_id";
        return Err(ApiError::new(ErrorCode::InvalidVerifyTarget, message));
    }
    let asked = asked_threshold(&form)?;
    let (target, own) = if let Some(subject) = form.text("subject") {
        let subject = subject_name(subject)?;
        let collection = collection(&form)?;
        caller.may_use(&collection)?;
        let own = existing_collection(&state, &collection).await?;
        (VerifyTarget::Subject { collection, subject }, Some(own))
    } else if let Some(face_id) = form.text("face_id") {
        let face_id = gallery::face_id(face_id)?;
        // The face's collection sets the default threshold; a face that does
        // not exist fails the job with `face_not_found` when it runs. To an
        // API key, a face it cannot reach is refused now, as is a missing one
        // (the answers must not tell the two apart).
        let face = state.store.get_face(face_id).await?;
        if caller.grant().is_some() && !face.as_ref().is_some_and(|f| caller.reaches(&f.collection)) {
            return Err(gallery::face_not_found(face_id));
        }
        let own = match face.and_then(|f| CollectionName::parse(&f.collection).ok()) {
            Some(collection) if asked.is_none() => state.store.get_collection(&collection).await?,
            _ => None,
        };
        (VerifyTarget::Face { face_id }, own)
    } else {
        // Two photos: a `collection`, if given, only sets the default threshold; it must exist.
        let own = match form.text("collection") {
            Some(_) => {
                let collection = collection(&form)?;
                caller.may_use(&collection)?;
                Some(existing_collection(&state, &collection).await?)
            }
            None => None,
        };
        (VerifyTarget::Image, own)
    };
    let threshold = threshold(asked, own.as_ref(), &state);
    submit(&state, &caller, &headers, form, JobParams::Verify(VerifyParams { target, threshold }), None).await
}

/// The request's own `threshold`, if it names one.
fn asked_threshold(form: &Form) -> Result<Option<Threshold>, ApiError> {
    let asked = form.text("threshold").map(Threshold::parse).transpose();
    asked.map_err(|e| invalid_param(ErrorCode::InvalidThreshold, e))
}

/// The request's `threshold`, else the collection's, else the server's default.
fn threshold(asked: Option<Threshold>, own: Option<&CollectionView>, state: &AppState) -> Threshold {
    asked.unwrap_or_else(|| gallery::collection_threshold(own, &state.settings))
}

/// The collection a search reads, or `404 collection_not_found`: searching a
/// collection that does not exist would answer "nobody known", which a typo
/// must never look like (`/v1/live` refuses it the same way).
async fn existing_collection(state: &AppState, name: &CollectionName) -> Result<CollectionView, ApiError> {
    state.store.get_collection(name).await?.ok_or_else(|| collection_not_found(name))
}

fn max_faces(form: &Form) -> Result<MaxFaces, ApiError> {
    match form.text("max_faces") {
        Some(v) => MaxFaces::parse(v).map_err(|e| invalid_param(ErrorCode::InvalidMaxFaces, e)),
        None => Ok(MaxFaces::DEFAULT),
    }
}

fn invalid_param(code: ErrorCode, e: ParamError) -> ApiError {
    ApiError::new(code, e.to_string())
}

fn collection(form: &Form) -> Result<CollectionName, ApiError> {
    collection_field(form.text("collection"))
}

fn callback_url(state: &AppState, form: &Form) -> Result<Option<String>, ApiError> {
    callback_url_field(form.text("callback_url"), state.settings.webhook_allow_private)
}

/// Records the job and its input, then enqueues it. If the enqueue fails the
/// job is deleted again, so a client never holds the id of a job nobody will run.
async fn submit(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    form: Form,
    params: JobParams,
    create_collection: Option<bool>,
) -> Result<Response, ApiError> {
    let kind = params.kind();
    let idempotency_key = idempotency_key(headers)?;
    let limit = state.settings.max_queued_jobs;
    let queued = state.admission.queued_jobs(&state.store, limit).await?;
    if queued >= limit {
        let error = ApiError::new(ErrorCode::QueueFull, format!("{queued} jobs are waiting; try again later"));
        return Err(ApiError { retry_after: Some(state.settings.retry_after_secs), ..error });
    }
    let callback_url = callback_url(state, &form)?;
    let Form { image, image2, .. } = form;
    let job = NewJob {
        id: JobId::new(),
        callback_url,
        params,
        request_id: headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned),
        content_type: image.content_type.to_owned(),
        // Moved, not copied: the upload's buffer becomes the job's input.
        input: Vec::from(image.bytes),
        second_input: image2.map(|i| (i.content_type.to_owned(), Vec::from(i.bytes))),
        idempotency_key,
        create_collection,
        api_key_id: caller.key_id(),
        // Kept with the job, so every message for it (this one, a retry's, the
        // reconciler's) joins the worker's spans to this request's trace.
        traceparent: facerec_telemetry::current_traceparent(),
    };
    // A client that goes away drops this handler wherever it is. A job once
    // recorded must still be enqueued (or removed), not wait for the
    // reconciler (FACEREC_REQUEUE_AFTER_SECS), so the rest is a task of its own.
    tokio::spawn(record_and_enqueue(state.clone(), job, kind).in_current_span())
        .await
        .map_err(|e| ApiError::internal(&e))?
}

/// Records the job and enqueues it (see [`submit`]); a repeated idempotency
/// key answers with the job it first made.
async fn record_and_enqueue(state: AppState, job: NewJob, kind: JobKind) -> Result<Response, ApiError> {
    let created = match state.store.insert_job(&job).await? {
        // What the queue needs of the job, its trace included.
        Submitted::Created(created) => created,
        Submitted::Existing(existing) => {
            if existing.kind != kind {
                let message = format!("this Idempotency-Key names a {} job", existing.kind);
                return Err(ApiError::new(ErrorCode::IdempotencyKeyReused, message));
            }
            info!(job_id = %existing.id, "idempotent repeat: answering with the original job");
            let body = Accepted { job_id: existing.id, kind, status: existing.status };
            let headers =
                [(header::LOCATION, location(existing.id)), (IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"))];
            return Ok((StatusCode::ACCEPTED, headers, Json(body)).into_response());
        }
    };
    if let Err(e) = state.queue.enqueue(std::slice::from_ref(&created)).await {
        error!(error = %e, source = ?std::error::Error::source(&e), job_id = %job.id, "enqueue failed");
        // If a worker already took the job, the message did arrive and the job runs.
        let taken_by_worker = match state.store.delete_unqueued_job(job.id).await {
            Ok(removed) => !removed,
            Err(e) => {
                error!(error = %e, job_id = %job.id, "could not remove the unqueued job");
                false
            }
        };
        if !taken_by_worker {
            return Err(ApiError::new(ErrorCode::QueueUnavailable, "the job queue is unavailable; try again later"));
        }
    }
    state.admission.note_queued();
    metrics::counter!(facerec_telemetry::metrics::names::JOBS_SUBMITTED, "kind" => kind.as_str()).increment(1);
    info!(job_id = %job.id, %kind, bytes = job.input.len(), "job queued");
    let body = Accepted { job_id: job.id, kind, status: JobStatus::Queued };
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location(job.id))], Json(body)).into_response())
}

/// Set on the answer to a repeated `Idempotency-Key`.
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

fn location(id: JobId) -> HeaderValue {
    HeaderValue::from_str(&format!("/v1/jobs/{id}")).expect("a UUID path is a valid header")
}

/// The optional `Idempotency-Key` header: 1–255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    match value.to_str() {
        Ok(key) if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(key.to_owned()))
        }
        _ => Err(ApiError::new(
            ErrorCode::InvalidIdempotencyKey,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}
