//! The gallery as clients see it: collections, subjects, faces and the audit
//! log of deletions (bodies of the `/v1/collections`, `/v1/faces` and
//! `/v1/audit` routes).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{BBox, FaceQuality};

/// A namespace of subjects and faces; recognize and verify search one at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CollectionView {
    pub name: String,
    pub description: Option<String>,
    /// Default threshold of recognize and verify here; `null`: the server's default.
    pub threshold: Option<f32>,
    /// The embedder of the collection's first face; every face must share it. `null` while empty.
    pub embedder: Option<String>,
    /// Register needs a `consent` reference.
    pub require_consent: bool,
    pub subject_count: i64,
    pub face_count: i64,
    pub created_at: DateTime<Utc>,
}

/// A subject in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubjectSummary {
    pub name: String,
    pub face_count: i64,
    pub created_at: DateTime<Utc>,
}

/// The consent a subject's registration referred to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsentView {
    /// What the client sent as `consent` (a signed form's id, a ticket URL…).
    pub reference: String,
    /// When the register job that carried it was submitted.
    pub given_at: DateTime<Utc>,
}

/// One subject with all its faces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubjectView {
    pub name: String,
    pub collection: String,
    pub face_count: i64,
    /// Oldest first.
    pub faces: Vec<FaceView>,
    /// `null` when no register for this subject carried a `consent` reference.
    pub consent: Option<ConsentView>,
    pub created_at: DateTime<Utc>,
}

/// One stored face: where it was found, how good it was, and which models made it.
/// The embedding itself is never returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FaceView {
    pub face_id: Uuid,
    pub subject: String,
    pub collection: String,
    pub bbox: BBox,
    pub detection_score: f32,
    /// As in the register result; `null` for faces registered before landmarks were kept.
    pub landmarks: Option<[[f32; 2]; 5]>,
    pub quality: Option<FaceQuality>,
    pub detector: String,
    pub embedder: String,
    /// The register job that stored it (`null` once that job was deleted by retention).
    pub source_job_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// What a deletion removed. Holds no biometric data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    /// `collection_deleted`, `subject_deleted` or `face_deleted`.
    pub action: String,
    pub collection: String,
    pub subject: Option<String>,
    pub face_id: Option<Uuid>,
    pub subjects_deleted: i64,
    pub faces_deleted: i64,
    /// Register jobs for what was deleted that were still queued or running, now `canceled`.
    pub jobs_canceled: i64,
    /// The deleted subject's consent reference: its withdrawal is on record.
    pub consent_ref: Option<String>,
    /// The `x-request-id` of the DELETE.
    pub request_id: Option<String>,
}
