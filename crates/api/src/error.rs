//! The api's one error model: every error code, its HTTP status (one table),
//! and the JSON body `{"error": {"code", "message", "request_id"}}`.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use facerec_store::Store;
use serde::Serialize;
use serde_json::{Value, json};

/// Declares the error codes with their HTTP status and meaning, once.
macro_rules! error_codes {
    ($($variant:ident => $code:literal, $status:ident, $doc:literal;)+) => {
        /// Every error the api answers with. Codes are stable: never renamed, only added.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $(#[doc = $doc] $variant,)+
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)+ }
            }

            pub fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status,)+ }
            }

            pub fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => $doc,)+ }
            }
        }
    };
}

error_codes! {
    InvalidMultipart => "invalid_multipart", BAD_REQUEST, "The body is not multipart/form-data, or is malformed.";
    MissingImage => "missing_image", BAD_REQUEST, "The form has no `image` field.";
    DuplicateField => "duplicate_field", BAD_REQUEST, "A form field is given twice.";
    UnknownField => "unknown_field", BAD_REQUEST, "A form field or query parameter the route does not take (a misspelling such as `treshold`); the message names it and the names the route takes.";
    MissingSubject => "missing_subject", BAD_REQUEST, "Register without a `subject`.";
    InvalidSubject => "invalid_subject", BAD_REQUEST, "`subject` is empty, over 128 characters or has control characters.";
    InvalidCollection => "invalid_collection", BAD_REQUEST, "`collection` does not match `[A-Za-z0-9_-]{1,64}`.";
    InvalidTopK => "invalid_top_k", BAD_REQUEST, "`top_k` is not an integer from 1 to 100.";
    InvalidThreshold => "invalid_threshold", BAD_REQUEST, "`threshold` is not a number from -1 to 1.";
    InvalidMaxFaces => "invalid_max_faces", BAD_REQUEST, "`max_faces` is not an integer from 1 to 100.";
    InvalidCallbackUrl => "invalid_callback_url", BAD_REQUEST, "`callback_url` is not an absolute http(s) URL of at most 2048 bytes, or its host is an address that is not public (loopback, private, link-local, reserved…).";
    InvalidJobId => "invalid_job_id", BAD_REQUEST, "The job id in the path is not a UUID.";
    InvalidIdempotencyKey => "invalid_idempotency_key", BAD_REQUEST, "`Idempotency-Key` is not 1 to 255 visible ASCII characters.";
    InvalidStatus => "invalid_status", BAD_REQUEST, "`status` is not a job status.";
    InvalidKind => "invalid_kind", BAD_REQUEST, "`kind` is not a job kind.";
    InvalidTime => "invalid_time", BAD_REQUEST, "`created_after` / `created_before` is not an RFC 3339 time.";
    InvalidLimit => "invalid_limit", BAD_REQUEST, "`limit` is not an integer from 1 to 100.";
    InvalidWait => "invalid_wait", BAD_REQUEST, "`wait_ms` is not an integer from 0 to 20000.";
    InvalidCursor => "invalid_cursor", BAD_REQUEST, "`cursor` is not one this api returned.";
    InvalidBody => "invalid_body", BAD_REQUEST, "The JSON body is malformed, has an unknown field or a value of the wrong type.";
    InvalidDescription => "invalid_description", BAD_REQUEST, "`description` is over 1000 characters or has a NUL character.";
    InvalidFaceId => "invalid_face_id", BAD_REQUEST, "The face id is not a UUID.";
    InvalidPrefix => "invalid_prefix", BAD_REQUEST, "`prefix` is empty, over 128 characters or has control characters.";
    InvalidConsent => "invalid_consent", BAD_REQUEST, "`consent` is not 1 to 512 characters without control characters.";
    ConsentRequired => "consent_required", BAD_REQUEST, "The collection requires consent: register needs a `consent` reference.";
    InvalidVerifyTarget => "invalid_verify_target", BAD_REQUEST, "Verify needs exactly one of `image2`, `subject` and `face_id`.";
    MissingArchive => "missing_archive", BAD_REQUEST, "`POST /v1/batches` without an `archive` file.";
    CorruptArchive => "corrupt_archive", BAD_REQUEST, "The archive cannot be read (e.g. a damaged central directory or a truncated stream).";
    UnsafeArchivePath => "unsafe_archive_path", BAD_REQUEST, "An archive entry has an absolute name or climbs out with `..`; nothing was kept.";
    ArchiveTooManyEntries => "archive_too_many_entries", BAD_REQUEST, "The archive has more entries than `FACEREC_MAX_BATCH_ITEMS`.";
    ArchiveBomb => "archive_bomb", BAD_REQUEST, "The archive expands far beyond its size (a compression bomb); nothing was kept.";
    ManifestTooLarge => "manifest_too_large", BAD_REQUEST, "The archive's `manifest.csv` is over 8 MiB or has more rows than `FACEREC_MAX_BATCH_ITEMS`; nothing was kept.";
    EmptyArchive => "empty_archive", BAD_REQUEST, "The archive has no files.";
    InvalidBatchId => "invalid_batch_id", BAD_REQUEST, "The batch id in the path is not a UUID.";
    InvalidKeyId => "invalid_key_id", BAD_REQUEST, "The key id in the path is not a UUID.";
    InvalidKeyName => "invalid_key_name", BAD_REQUEST, "`name` is empty, over 128 characters or has control characters.";
    InvalidActions => "invalid_actions", BAD_REQUEST, "`actions` is empty, too long, or names an unknown action.";
    InvalidCollectionPatterns => "invalid_collection_patterns", BAD_REQUEST, "`collections` is empty, too long, or has an entry that is not a collection name, a name prefix ending in `*`, or `*`.";
    InvalidExpiresAt => "invalid_expires_at", BAD_REQUEST, "`expires_at` is not an RFC 3339 time in the future.";
    AmbiguousCredentials => "ambiguous_credentials", BAD_REQUEST, "The request has more than one `Authorization` header, or offers `/v1/live` more than one key (header and `facerec.key.*` subprotocols).";
    MissingApiKey => "missing_api_key", UNAUTHORIZED, "The request has no `Authorization: Bearer <key>` header (the api has a master key).";
    InvalidApiKey => "invalid_api_key", UNAUTHORIZED, "The `Authorization` header is malformed, or its key is unknown, deleted or expired.";
    Forbidden => "forbidden", FORBIDDEN, "The key lacks the action this route needs, may not use the collection named, or may not grant the rights asked for.";
    CollectionExists => "collection_exists", CONFLICT, "A collection of this name exists.";
    SubjectExists => "subject_exists", CONFLICT, "The collection already has a subject of the new name.";
    IdempotencyKeyReused => "idempotency_key_reused", CONFLICT, "The `Idempotency-Key` already names a job of another kind.";
    BatchNotCancelable => "batch_not_cancelable", CONFLICT, "The batch has already ended (completed or canceled).";
    JobNotCancelable => "job_not_cancelable", CONFLICT, "Only a queued job can be canceled; this one is processing or has ended.";
    QueueFull => "queue_full", TOO_MANY_REQUESTS, "Too many jobs are waiting; retry after `Retry-After` seconds.";
    RateLimited => "rate_limited", TOO_MANY_REQUESTS, "The caller is over its own share: its key's request rate (`FACEREC_KEY_RATE_PER_SEC`), its share of the upload budget or the spool (`FACEREC_MAX_SHARE_PERCENT`), or its address's live streams waiting for a key; retry after `Retry-After` seconds.";
    JobNotFound => "job_not_found", NOT_FOUND, "No job has this id.";
    KeyNotFound => "key_not_found", NOT_FOUND, "No key has this id.";
    BatchNotFound => "batch_not_found", NOT_FOUND, "No batch has this id.";
    CollectionNotFound => "collection_not_found", NOT_FOUND, "No collection has this name.";
    SubjectNotFound => "subject_not_found", NOT_FOUND, "The collection has no subject of this name.";
    FaceNotFound => "face_not_found", NOT_FOUND, "No face has this id.";
    NotFound => "not_found", NOT_FOUND, "No such route.";
    MethodNotAllowed => "method_not_allowed", METHOD_NOT_ALLOWED, "The route does not accept this method.";
    RequestTimeout => "request_timeout", REQUEST_TIMEOUT, "The request body came in too slowly (nothing for `FACEREC_BODY_IDLE_TIMEOUT_SECS`, or under `FACEREC_MIN_UPLOAD_BYTES_PER_SEC` on average); nothing was kept and the connection is closed.";
    PayloadTooLarge => "payload_too_large", PAYLOAD_TOO_LARGE, "The upload (each image) is over `FACEREC_MAX_UPLOAD_BYTES`.";
    ArchiveTooLarge => "archive_too_large", PAYLOAD_TOO_LARGE, "The archive is larger than `FACEREC_MAX_BATCH_BYTES`.";
    UnsupportedArchive => "unsupported_archive", UNSUPPORTED_MEDIA_TYPE, "The archive is not zip, tar or tar.gz (judged by its bytes).";
    UnsupportedMediaType => "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, "The image is not JPEG, PNG or WebP (judged by its bytes).";
    CorruptImage => "corrupt_image", UNPROCESSABLE_ENTITY, "The image is empty or its header cannot be read.";
    ImageTooLarge => "image_too_large", UNPROCESSABLE_ENTITY, "The image header declares more pixels than `FACEREC_MAX_PIXELS`, or (above 4 megapixels) more per byte of file than `FACEREC_MAX_PIXELS_PER_BYTE`.";
    WebsocketRequired => "websocket_required", UPGRADE_REQUIRED, "`GET /v1/live` without a WebSocket upgrade.";
    ServerBusy => "server_busy", SERVICE_UNAVAILABLE, "The api is at a shared limit (uploads in flight, archives spooling, live streams, database connections); nothing was kept. Retry after `Retry-After` seconds.";
    DatabaseUnavailable => "database_unavailable", SERVICE_UNAVAILABLE, "PostgreSQL does not answer; nothing was kept. Retry after `Retry-After` seconds.";
    QueueUnavailable => "queue_unavailable", SERVICE_UNAVAILABLE, "Redis refused the job; nothing was kept. Retry later.";
    NotReady => "not_ready", SERVICE_UNAVAILABLE, "`/readyz`: PostgreSQL or Redis does not answer.";
    InternalError => "internal_error", INTERNAL_SERVER_ERROR, "Our side failed; the details are logged with the request id.";
}

/// An error answer: a stable code (which fixes the HTTP status) and a message
/// for humans. Every error the api returns goes through this type.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Extra top-level fields of the body, beside `error` (e.g. `/readyz`'s `checks`).
    pub extra: Option<(&'static str, Value)>,
    /// `Retry-After` seconds, for errors a client should retry later.
    pub retry_after: Option<u64>,
    /// Came from a query that found no free pooled connection in time; told
    /// apart (busy pool or unreachable database) where the store is known.
    pub pool_timeout: bool,
}

/// The error as it travels from a handler to `render_errors`, which adds the request id.
#[derive(Debug, Clone)]
struct PendingError(ApiError);

/// The JSON body of every error response (documented in the OpenAPI schema).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// The request's `x-request-id`, also in the response header and the logs.
    pub request_id: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), extra: None, retry_after: None, pool_timeout: false }
    }

    /// `503 server_busy`: come back after `retry_after` seconds.
    pub fn busy(message: impl Into<String>, retry_after: u64) -> Self {
        Self { retry_after: Some(retry_after), ..Self::new(ErrorCode::ServerBusy, message) }
    }

    /// `429 rate_limited`: this caller holds its own share of a limit that
    /// others share too (its request rate, its part of the upload budget, of
    /// the spool, of the streams waiting for a key); `503 server_busy` is for
    /// the shared limit itself. Come back after `retry_after` seconds.
    pub fn over_share(message: impl Into<String>, retry_after: u64) -> Self {
        Self { retry_after: Some(retry_after), ..Self::new(ErrorCode::RateLimited, message) }
    }

    /// `400 unknown_field`: the request names something (`what`: "form has an
    /// unknown field", "query has an unknown parameter") the route does not
    /// take; the message names it and every name the route takes.
    pub fn unknown_field(what: &str, name: &str, allowed: &[&str]) -> Self {
        let takes = if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") };
        Self::new(ErrorCode::UnknownField, format!("the {what} {name:?}; this route takes {takes}"))
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, format!("the upload is larger than {limit} bytes"))
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(ErrorCode::UnsupportedMediaType, "the image must be JPEG, PNG or WebP")
    }

    /// 500: logs the cause (inside the request's span) and tells the client nothing of it.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %cause, source = ?cause.source(), "internal error");
        Self::new(ErrorCode::InternalError, "an internal error occurred")
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
}

impl IntoResponse for ApiError {
    /// The body is written by [`render_errors`], which knows the request id.
    fn into_response(self) -> Response {
        let mut response = self.status().into_response();
        response.extensions_mut().insert(PendingError(self));
        response
    }
}

/// Middleware: renders every [`ApiError`] response as JSON with the request's id.
/// A pool timeout becomes `server_busy` when every connection was open (the
/// pool was busy), and stays `database_unavailable` otherwise.
pub async fn render_errors(State(store): State<Store>, request: Request, next: Next) -> Response {
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut response = next.run(request).await;
    let Some(PendingError(mut error)) = response.extensions_mut().remove::<PendingError>() else {
        return response;
    };
    if error.pool_timeout && store.is_saturated() {
        error = ApiError::busy("every database connection is busy; try again shortly", 1);
    }
    let mut body = json!({"error": {"code": error.code, "message": error.message, "request_id": request_id}});
    if let Some((key, value)) = error.extra {
        body[key] = value;
    }
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let mut rendered = (parts.status, Json(body)).into_response();
    if let Some(secs) = error.retry_after {
        rendered.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
    }
    if error.code.status() == StatusCode::UNAUTHORIZED {
        let challenge = axum::http::HeaderValue::from_static("Bearer realm=\"facerec\"");
        rendered.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, challenge);
    }
    for (name, value) in parts.headers.iter() {
        rendered.headers_mut().entry(name).or_insert_with(|| value.clone());
    }
    rendered
}

impl From<facerec_store::StoreError> for ApiError {
    /// A database that cannot be reached is a 503 the client may retry; anything else is ours (500).
    fn from(e: facerec_store::StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "database unavailable");
            let error = Self::new(ErrorCode::DatabaseUnavailable, "the database is unavailable; try again later");
            return Self { retry_after: Some(5), pool_timeout: e.is_pool_timeout(), ..error };
        }
        Self::internal(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_text_and_map_to_one_status() {
        for &code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert!(code.status().is_client_error() || code.status().is_server_error(), "{code:?}");
            assert!(!code.description().is_empty());
        }
        assert_eq!(ErrorCode::PayloadTooLarge.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(ErrorCode::ImageTooLarge.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    /// The error table of docs/api.md ("Errors"): each row's status and the
    /// codes in backticks of its second column.
    fn documented_codes(guide: &str) -> Vec<(u16, String)> {
        let table = guide.split("| status | code | when |").nth(1).expect("docs/api.md has the error table");
        let rows = table.lines().skip(1).take_while(|l| l.starts_with('|')).filter(|l| !l.starts_with("|---"));
        let mut codes = Vec::new();
        for row in rows {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let status = cells[1].parse::<u16>().unwrap_or_else(|_| panic!("no status in {row:?}"));
            codes.extend(cells[2].split('`').skip(1).step_by(2).map(|code| (status, code.to_owned())));
        }
        codes
    }

    /// A code added to the table in this file must reach the guide too.
    #[test]
    fn the_guide_lists_every_code_with_its_status() {
        let documented = documented_codes(include_str!("../../../docs/api.md"));
        let missing: Vec<String> = ErrorCode::ALL
            .iter()
            .filter(|code| !documented.contains(&(code.status().as_u16(), code.as_str().to_owned())))
            .map(|code| format!("{} {}", code.status().as_u16(), code.as_str()))
            .collect();
        assert!(missing.is_empty(), "docs/api.md's error table lacks (or has another status for): {missing:?}");
        for (status, code) in &documented {
            assert!(
                ErrorCode::ALL.iter().any(|c| c.as_str() == code),
                "docs/api.md lists {status} {code:?}, no such code"
            );
        }
    }
}
