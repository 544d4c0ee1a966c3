//! The multipart bodies of the submission and batch routes, and the errors
//! every submission may answer with, as the OpenAPI document describes them.
//! Documentation only: `upload::Form` and `intake` read the real forms.

use utoipa::ToSchema;

use crate::error::ErrorBody;

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
