//! The OpenAPI 3.1 document (`/openapi.json`), generated from the handlers'
//! annotations and the result types, and the offline docs page (`/docs`,
//! Swagger UI vendored into the binary: nothing is loaded from the internet).

use facerec_core::{
    AuditEntry, BBox, BatchCounts, BatchItemError, BatchItemStatus, BatchItemView, BatchStatus, BatchView, BestMatch,
    CollectionView, ConsentView, Durations, EmbedResult, EmbeddedFace, FaceInfo, FaceMatch, FaceQuality, FaceView,
    JobError, JobErrorCode, JobId, JobKind, JobStatus, JobView, RecognizeResult, RecognizedFace, RegisterResult,
    RetryView, SkipReason, SkippedFace, SubjectSummary, SubjectView, VerifiedAgainst, VerifyResult, WebhookView,
};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::{ErrorBody, ErrorCode, ErrorDetail};
use crate::routes::{batches, collections, health, jobs, keys, listing, subjects, submit};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "facerec",
        description = "Self-hosted face recognition. Submissions are jobs: each answers `202` with a job id; \
                       poll `GET /v1/jobs/{id}` for the result. Every error body is \
                       `{\"error\": {\"code\", \"message\", \"request_id\"}}`; `code` is stable (see `ErrorCode` \
                       for request errors and `JobErrorCode` for failed jobs). Every response carries `x-request-id` \
                       (the client's, if 1 to 64 characters of `[A-Za-z0-9._:-]`; else a generated one). \
                       When the server has a master key (`FACEREC_MASTER_KEY`), every `/v1` request needs \
                       `Authorization: Bearer <key>`: the master key or an API key from `POST /v1/keys`, which may \
                       do only its `actions` on collections matching its `collections` patterns.",
        license(name = "MIT")
    ),
    paths(
        submit::register,
        submit::recognize,
        submit::embed,
        submit::verify,
        jobs::get_job,
        jobs::cancel_job,
        listing::list_jobs,
        listing::stats,
        collections::create_collection,
        collections::list_collections,
        collections::get_collection,
        collections::update_collection,
        collections::delete_collection,
        subjects::list_subjects,
        subjects::get_subject,
        subjects::rename_subject,
        subjects::delete_subject,
        subjects::list_faces,
        subjects::get_face,
        subjects::delete_face,
        subjects::list_audit,
        batches::create_batch,
        batches::list_batches,
        batches::get_batch,
        batches::list_batch_items,
        batches::cancel_batch,
        keys::create_key,
        keys::list_keys,
        keys::get_key,
        keys::update_key,
        keys::delete_key,
        health::healthz,
        health::readyz,
        crate::metrics::serve_metrics
    ),
    components(schemas(
        Accepted, RegisterForm, RecognizeForm, EmbedForm, JobView, JobError, Durations, WebhookView, RetryView,
        listing::JobPage, listing::Stats, Health, Readiness, ErrorBody,
        ErrorDetail, ErrorCode, JobErrorCode, JobId, JobKind, JobStatus, BBox, FaceQuality, FaceInfo,
        RegisterResult, RecognizeResult, RecognizedFace, FaceMatch, BestMatch, SkippedFace, SkipReason,
        EmbedResult, EmbeddedFace, VerifyForm, VerifyResult, VerifiedAgainst, CollectionView, ConsentView,
        SubjectSummary, SubjectView, FaceView, AuditEntry, collections::CreateCollection,
        collections::UpdateCollection, collections::CollectionPage, subjects::SubjectPage, subjects::FacePage,
        subjects::AuditPage, subjects::RenameSubject, BatchForm, BatchView, BatchStatus, BatchCounts,
        BatchItemView, BatchItemStatus, BatchItemError, batches::BatchItemPage, batches::BatchPage,
        facerec_core::Action, keys::CreateKey, keys::UpdateKey, keys::KeyView, keys::CreatedKey, keys::KeyPage
    )),
    modifiers(&KeyAuth),
    tags(
        (name = "jobs", description = "Submit work and read its outcome"),
        (name = "gallery", description = "Collections, subjects and faces: list, inspect, correct, delete"),
        (name = "batches", description = "Bulk ingestion: an archive of labelled photos, one register job per image"),
        (name = "keys", description = "API keys: who may do what, on which collections"),
        (name = "health", description = "Probes")
    )
)]
pub struct ApiDoc;

/// Every `/v1` operation takes a bearer key (the `/docs` page's Authorize
/// button) and may answer `401`, `403` and `429 rate_limited`.
struct KeyAuth;

impl Modify for KeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "The master key (`FACEREC_MASTER_KEY`) or an API key (`frk_…`). Needed only when the server has a \
             master key."
                .to_owned(),
        );
        components.add_security_scheme("api_key", SecurityScheme::Http(bearer));
        let error = |description: &str| {
            let content = Content::new(Some(Ref::from_schema_name("ErrorBody")));
            RefOr::T(Response::builder().description(description).content("application/json", content).build())
        };
        for (path, item) in openapi.paths.paths.iter_mut().filter(|(path, _)| path.starts_with("/v1/")) {
            let operations = [&mut item.get, &mut item.post, &mut item.patch, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                operation.security = Some(vec![SecurityRequirement::new("api_key", Vec::<String>::new())]);
                let responses = &mut operation.responses.responses;
                responses.insert(
                    "401".to_owned(),
                    error("`missing_api_key`, `invalid_api_key` (malformed header; unknown, deleted or expired key)"),
                );
                let forbidden = if path.starts_with("/v1/keys") {
                    "`forbidden`: the key lacks `keys.manage`, or asks for more rights than it holds"
                } else {
                    "`forbidden`: the key lacks this route's action, or may not use the collection named"
                };
                responses.insert("403".to_owned(), error(forbidden));
                match responses.get_mut("429") {
                    Some(RefOr::T(existing)) => {
                        existing.description.push_str("; `rate_limited`: the key is over its request rate")
                    }
                    _ => {
                        responses.insert(
                            "429".to_owned(),
                            error(
                                "`rate_limited`: the key is over its request rate; retry after `Retry-After` seconds",
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// `202 Accepted` body of every submission; the `Location` header names the job.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub job_id: JobId,
    pub kind: JobKind,
    /// Always `queued`.
    pub status: JobStatus,
}

/// The errors any submission may answer with, by status (the codes are `ErrorCode`s).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum SubmitErrors {
    /// `invalid_multipart`, `unknown_field`, `missing_image`, `duplicate_field`, `missing_subject`,
    /// `invalid_subject`, `invalid_collection`, `invalid_top_k`, `invalid_threshold`, `invalid_max_faces`,
    /// `invalid_callback_url`, `invalid_idempotency_key`, `invalid_consent`, `consent_required`, `invalid_verify_target`, `invalid_face_id`
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// `collection_not_found`: recognize, or verify naming a `collection`, in a collection that does not
    /// exist; `face_not_found`: verify with the `face_id` of a face an API key cannot reach (or that does
    /// not exist)
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// `idempotency_key_reused`: the key names a job of another kind
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// `payload_too_large`
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// `unsupported_media_type`
    #[response(status = 415)]
    Unsupported(ErrorBody),
    /// `corrupt_image`, `image_too_large`
    #[response(status = 422)]
    Unprocessable(ErrorBody),
    /// `queue_full`: back-pressure; retry after `Retry-After` seconds
    /// `request_timeout`: the body came in too slowly (the connection is closed)
    #[response(status = 408)]
    TooSlow(ErrorBody),
    #[response(status = 429)]
    QueueFull(ErrorBody),
    /// `internal_error`
    #[response(status = 500)]
    Internal(ErrorBody),
    /// `server_busy` (too many uploads in flight, or every database connection busy),
    /// `queue_unavailable`, `database_unavailable` (with `Retry-After`)
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `GET /readyz` when both dependencies answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// Always `ready`.
    pub status: String,
    /// `{"postgres": "ok", "redis": "ok"}`; on `503` the error body carries the same field.
    pub checks: std::collections::BTreeMap<String, String>,
}

/// `multipart/form-data` body of `POST /v1/register`. Any other field is refused (`unknown_field`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RegisterForm {
    /// JPEG, PNG or WebP, judged by its bytes; at most `FACEREC_MAX_UPLOAD_BYTES` and `FACEREC_MAX_PIXELS`.
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
    /// The person's external id or name: 1–128 characters, no control characters; stored exactly.
    #[schema(min_length = 1, max_length = 128)]
    subject: String,
    /// Gallery namespace, `[A-Za-z0-9_-]{1,64}`; default `default`.
    #[schema(required = false, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    collection: String,
    /// Absolute http(s) URL, at most 2048 bytes, whose host is a name or a public
    /// address (`invalid_callback_url` otherwise); stored with the job.
    #[schema(required = false, max_length = 2048)]
    callback_url: String,
    /// A reference to the person's consent (a signed form's id, a ticket URL), 1–512 characters;
    /// required in collections with `require_consent`, stored with the subject.
    #[schema(required = false, min_length = 1, max_length = 512)]
    consent: String,
}

/// `multipart/form-data` body of `POST /v1/batches`. Any other field is refused (`unknown_field`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BatchForm {
    /// A zip, tar or tar.gz archive (judged by its bytes), at most `FACEREC_MAX_BATCH_BYTES`
    /// (2 GiB) and `FACEREC_MAX_BATCH_ITEMS` (100,000) entries. Layout `<subject>/<image>`, or a
    /// `manifest.csv` (`path,subject`) at its root. Entries that are not images are reported as
    /// skipped items; links are never followed; nested archives are not opened.
    #[schema(value_type = String, format = Binary)]
    archive: Vec<u8>,
    #[schema(required = false, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    collection: String,
    /// Sent once, signed, when the whole batch has ended.
    #[schema(required = false, max_length = 2048)]
    callback_url: String,
    /// Consent reference for every subject of the archive (collections with `require_consent`).
    #[schema(required = false, min_length = 1, max_length = 512)]
    consent: String,
}

/// `multipart/form-data` body of `POST /v1/recognize`. Any other field is refused (`unknown_field`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RecognizeForm {
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
    /// The collection searched; default `default`. It must exist: a misspelt name is
    /// `404 collection_not_found`, never a search that finds nobody.
    #[schema(required = false, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    collection: String,
    /// Matches per face, 1–100; default 5.
    #[schema(required = false, minimum = 1, maximum = 100)]
    top_k: u32,
    /// Cosine similarity from -1 to 1 at which a match counts; default: the collection's
    /// `threshold`, else `FACEREC_DEFAULT_THRESHOLD` (0.4).
    #[schema(required = false, minimum = -1.0, maximum = 1.0)]
    threshold: f32,
    /// Faces searched, largest first, 1–100; default 10.
    #[schema(required = false, minimum = 1, maximum = 100)]
    max_faces: u32,
    #[schema(required = false, max_length = 2048)]
    callback_url: String,
}

/// `multipart/form-data` body of `POST /v1/embed`. Any other field is refused (`unknown_field`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EmbedForm {
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
    /// Faces embedded, largest first, 1–100; default 10.
    #[schema(required = false, minimum = 1, maximum = 100)]
    max_faces: u32,
    #[schema(required = false, max_length = 2048)]
    callback_url: String,
}

/// `multipart/form-data` body of `POST /v1/verify`: `image` and exactly one
/// of `image2`, `subject` (with `collection`) and `face_id`. Any other field is refused (`unknown_field`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct VerifyForm {
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
    /// A second photo: its largest usable face is compared.
    #[schema(required = false, value_type = String, format = Binary)]
    image2: Vec<u8>,
    /// A subject of `collection`: its most similar face counts.
    #[schema(required = false, min_length = 1, max_length = 128)]
    subject: String,
    /// The subject's collection (and the default threshold's); default `default`. It must
    /// exist (`404 collection_not_found`).
    #[schema(required = false, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    collection: String,
    /// A stored face.
    #[schema(required = false, format = Uuid)]
    face_id: String,
    /// Default: the collection's `threshold`, else `FACEREC_DEFAULT_THRESHOLD`.
    #[schema(required = false, minimum = -1.0, maximum = 1.0)]
    threshold: f32,
    #[schema(required = false, max_length = 2048)]
    callback_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_every_route_and_error_code() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
        let paths = ["/v1/register", "/v1/recognize", "/v1/embed", "/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/cancel"];
        let gallery = [
            "/v1/verify",
            "/v1/collections",
            "/v1/collections/{name}",
            "/v1/collections/{name}/subjects",
            "/v1/collections/{name}/subjects/{subject}",
            "/v1/collections/{name}/faces",
            "/v1/faces/{id}",
            "/v1/audit",
            "/v1/batches",
            "/v1/batches/{id}",
            "/v1/batches/{id}/items",
            "/v1/batches/{id}/cancel",
        ];
        for path in
            paths.into_iter().chain(gallery).chain(["/v1/stats", "/v1/keys", "/v1/keys/{id}", "/healthz", "/readyz"])
        {
            assert!(doc["paths"][path].is_object(), "{path} missing");
        }
        assert!(doc["paths"]["/v1/batches"]["get"].is_object(), "the list of batches is documented");
        assert_eq!(doc["components"]["securitySchemes"]["api_key"]["scheme"], "bearer");
        assert_eq!(doc["paths"]["/v1/jobs/{id}"]["get"]["security"][0]["api_key"], serde_json::json!([]));
        assert!(doc["paths"]["/v1/jobs/{id}"]["get"]["responses"]["401"].is_object());
        assert!(doc["paths"]["/healthz"]["get"]["security"].is_null(), "probes stay open");
        let codes = doc["components"]["schemas"]["ErrorCode"].to_string();
        for code in ErrorCode::ALL {
            assert!(codes.contains(code.as_str()), "{code:?} missing from the ErrorCode schema");
        }
    }
}
