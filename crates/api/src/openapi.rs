//! The OpenAPI 3.1 document (`/openapi.json`), generated from the handlers'
//! annotations and the result types, and the offline docs page (`/docs`,
//! Swagger UI vendored into the binary: nothing is loaded from the internet).

use facerec_core::{
    AuditEntry, BBox, BatchCounts, BatchItemError, BatchItemStatus, BatchItemView, BatchStatus, BatchView, BestMatch,
    CollectionView, ConsentView, Durations, EmbedResult, EmbeddedFace, FaceInfo, FaceMatch, FaceQuality, FaceView,
    JobError, JobErrorCode, JobId, JobKind, JobStatus, JobView, RecognizeResult, RecognizedFace, RegisterResult,
    RetryView, SkipReason, SkippedFace, SubjectSummary, SubjectView, VerifiedAgainst, VerifyResult, WebhookStatus,
    WebhookView,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorCode, ErrorDetail};
use crate::routes::{batches, collections, forms, health, jobs, keys, listing, subjects, submit};

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
        submit::Accepted, forms::RegisterForm, forms::RecognizeForm, forms::EmbedForm, JobView, JobError, Durations,
        WebhookView, WebhookStatus, RetryView, listing::JobPage, listing::Stats, health::Health, health::Readiness,
        ErrorBody, ErrorDetail, ErrorCode, JobErrorCode, JobId, JobKind, JobStatus, BBox, FaceQuality, FaceInfo,
        RegisterResult, RecognizeResult, RecognizedFace, FaceMatch, BestMatch, SkippedFace, SkipReason,
        EmbedResult, EmbeddedFace, forms::VerifyForm, VerifyResult, VerifiedAgainst, CollectionView, ConsentView,
        SubjectSummary, SubjectView, FaceView, AuditEntry, collections::CreateCollection,
        collections::UpdateCollection, collections::CollectionPage, subjects::SubjectPage, subjects::FacePage,
        subjects::AuditPage, subjects::RenameSubject, forms::BatchForm, BatchView, BatchStatus, BatchCounts,
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
