//! Storing a registered face: its subject, its collection's embedder binding
//! and the job's end, in one statement (`facerec_complete_register`).

use chrono::{DateTime, Utc};
use facerec_core::{BBox, CollectionName, ConsentRef, FaceQuality, SubjectName};
use pgvector::Vector;
use uuid::Uuid;

use crate::error::QueryContext;
use crate::{Claim, Store, StoreError};

/// A face to add to the gallery.
#[derive(Debug, Clone)]
pub struct NewFace {
    pub id: Uuid,
    pub subject: SubjectName,
    pub collection: CollectionName,
    pub detector: String,
    pub embedder: String,
    pub embedding: Vec<f32>,
    pub bbox: BBox,
    pub detection_score: f32,
    pub landmarks: [[f32; 2]; 5],
    pub quality: FaceQuality,
    /// The consent reference the register carried, and when it was submitted.
    pub consent: Option<(ConsentRef, DateTime<Utc>)>,
    /// The sha256 of the uploaded image: the same image registered again for
    /// the same subject returns the face it made.
    pub source_sha256: Option<Vec<u8>>,
}

/// What storing a registered face did.
#[derive(Debug, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// The face is stored and the job succeeded.
    Stored,
    /// The subject already had a face from this very image: the job succeeded
    /// naming that face (its result says `already_registered`); nothing new was stored.
    AlreadyStored(Uuid),
    /// The claim was lost (or the job canceled) meanwhile; nothing was written.
    ClaimLost,
    /// The collection is bound to this other embedder; nothing was written.
    EmbedderMismatch(String),
}

impl Store {
    /// Stores the face (creating its subject if new, binding an empty
    /// collection to the face's embedder) and ends the register job with
    /// `result`, in one statement. Writes nothing unless it returns `Stored`
    /// or `AlreadyStored` (which ends the job naming the existing face).
    pub async fn complete_register(
        &self,
        claim: &Claim,
        face: &NewFace,
        result: &serde_json::Value,
    ) -> Result<RegisterOutcome, StoreError> {
        // One round trip (migrations/*_finish_in_one_call.sql): the job row
        // first, then the collection's embedder, the subject and the face.
        let (consent_ref, consent_at) = face.consent.as_ref().map(|(r, at)| (r.as_str(), *at)).unzip();
        let done: Result<(String, Option<Uuid>), sqlx::Error> = sqlx::query_as(
            "SELECT outcome, face FROM facerec_complete_register( \
                 $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(claim.job.id.0)
        .bind(claim.token)
        .bind(sqlx::types::Json(result))
        .bind(Uuid::now_v7())
        .bind(face.collection.as_str())
        .bind(face.subject.as_str())
        .bind(consent_ref)
        .bind(consent_at)
        .bind(face.id)
        .bind(&face.detector)
        .bind(&face.embedder)
        .bind(Vector::from(face.embedding.clone()))
        .bind(sqlx::types::Json(face.bbox))
        .bind(face.detection_score)
        .bind(sqlx::types::Json(face.landmarks))
        .bind(sqlx::types::Json(face.quality))
        .bind(&face.source_sha256)
        .fetch_one(&self.pool)
        .await;
        match done {
            Ok((outcome, stored)) => match (outcome.as_str(), stored) {
                ("stored", _) => Ok(RegisterOutcome::Stored),
                ("already_stored", Some(existing)) => Ok(RegisterOutcome::AlreadyStored(existing)),
                ("claim_lost", _) => Ok(RegisterOutcome::ClaimLost),
                (other, _) => Err(StoreError::Corrupt {
                    what: "register outcome",
                    source: format!("facerec_complete_register answered {other:?}").into(),
                }),
            },
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(EMBEDDER_MISMATCH) => {
                Ok(RegisterOutcome::EmbedderMismatch(e.message().to_owned()))
            }
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(SUBJECT_RACE) => {
                Err(StoreError::Conflict("subject created and deleted concurrently"))
            }
            Err(e) => Err(e).context("complete register"),
        }
    }
}

/// SQLSTATEs that `facerec_complete_register` raises: the collection is bound
/// to another embedder (the message names it); the subject was deleted each
/// time it was created.
const EMBEDDER_MISMATCH: &str = "FR001";
const SUBJECT_RACE: &str = "FR002";
