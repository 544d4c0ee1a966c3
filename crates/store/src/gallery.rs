//! Storing a registered face: its subject, its collection's embedder binding
//! and the job's end, in one transaction.

use chrono::{DateTime, Utc};
use facerec_core::{BBox, CollectionName, ConsentRef, FaceQuality, SubjectName};
use pgvector::Vector;
use uuid::Uuid;

use crate::error::QueryContext;
use crate::jobs::finish;
use crate::{Claim, Store, StoreError};
use facerec_core::JobStatus;

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
    /// `result`, in one transaction. Writes nothing unless it returns `Stored`.
    pub async fn complete_register(
        &self,
        claim: &Claim,
        face: &NewFace,
        result: &serde_json::Value,
    ) -> Result<RegisterOutcome, StoreError> {
        let mut tx = self.pool.begin().await.context("begin register")?;
        // The job row first: a deletion that cancels this job takes it first too.
        if !finish(&mut *tx, claim.job.id, claim.token, JobStatus::Succeeded, Some(result), None).await? {
            return Ok(RegisterOutcome::ClaimLost);
        }
        // Read first: once bound (the usual case) the collection row is not
        // locked until the face count changes, at the end of this transaction.
        let bound: Option<String> = sqlx::query_scalar("SELECT embedder FROM collections WHERE name = $1")
            .bind(face.collection.as_str())
            .fetch_optional(&mut *tx)
            .await
            .context("read collection embedder")?
            .flatten();
        let bound = match bound {
            Some(bound) => bound,
            None => sqlx::query_scalar(
                "INSERT INTO collections (name, embedder) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET embedder = coalesce(collections.embedder, EXCLUDED.embedder) \
                 RETURNING embedder",
            )
            .bind(face.collection.as_str())
            .bind(&face.embedder)
            .fetch_one(&mut *tx)
            .await
            .context("bind collection embedder")?,
        };
        if bound != face.embedder {
            return Ok(RegisterOutcome::EmbedderMismatch(bound));
        }
        let subject_id = subject_id(&mut tx, face).await?;
        let inserted: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO faces (id, subject_id, collection, detector, embedder, embedding, bbox, detection_score, \
             landmarks, quality, source_job_id, source_sha256) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (subject_id, source_sha256) WHERE source_sha256 IS NOT NULL DO NOTHING RETURNING id",
        )
        .bind(face.id)
        .bind(subject_id)
        .bind(face.collection.as_str())
        .bind(&face.detector)
        .bind(&face.embedder)
        .bind(Vector::from(face.embedding.clone()))
        .bind(sqlx::types::Json(face.bbox))
        .bind(face.detection_score)
        .bind(sqlx::types::Json(face.landmarks))
        .bind(sqlx::types::Json(face.quality))
        .bind(claim.job.id.0)
        .bind(&face.source_sha256)
        .fetch_optional(&mut *tx)
        .await
        .context("insert face")?;
        if inserted.is_none() {
            return self.name_existing_face(tx, claim, subject_id, face).await;
        }
        tx.commit().await.context("commit register")?;
        Ok(RegisterOutcome::Stored)
    }
}

impl Store {
    /// The subject already has a face from this image: the job's result names
    /// that face instead of the one it would have stored.
    async fn name_existing_face(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        claim: &Claim,
        subject_id: Uuid,
        face: &NewFace,
    ) -> Result<RegisterOutcome, StoreError> {
        let existing: Uuid = sqlx::query_scalar("SELECT id FROM faces WHERE subject_id = $1 AND source_sha256 = $2")
            .bind(subject_id)
            .bind(&face.source_sha256)
            .fetch_one(&mut *tx)
            .await
            .context("read the face of the same image")?;
        sqlx::query(
            "UPDATE jobs SET result = jsonb_set(result, '{face_id}', to_jsonb($2::text)) \
                 || '{\"already_registered\": true}'::jsonb WHERE id = $1",
        )
        .bind(claim.job.id.0)
        .bind(existing.to_string())
        .execute(&mut *tx)
        .await
        .context("name the existing face")?;
        tx.commit().await.context("commit register")?;
        Ok(RegisterOutcome::AlreadyStored(existing))
    }
}

/// The id of the face's subject, created if new. A register with a consent
/// reference stores it (the latest wins); one without leaves the row alone,
/// neither rewriting nor locking it, so registers for one subject do not queue
/// behind each other.
async fn subject_id(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, face: &NewFace) -> Result<Uuid, StoreError> {
    let (collection, name) = (face.collection.as_str(), face.subject.as_str());
    if let Some((consent_ref, consent_at)) = &face.consent {
        return sqlx::query_scalar(
            "INSERT INTO subjects (id, collection, name, consent_ref, consent_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (collection, name) DO UPDATE SET \
                 consent_ref = EXCLUDED.consent_ref, consent_at = EXCLUDED.consent_at \
             RETURNING id",
        )
        .bind(Uuid::now_v7())
        .bind(collection)
        .bind(name)
        .bind(consent_ref.as_str())
        .bind(consent_at)
        .fetch_one(&mut **tx)
        .await
        .context("upsert subject");
    }
    // The usual case: the subject exists. Otherwise insert it; a concurrent
    // register may insert it first (DO NOTHING), and a concurrent deletion may
    // remove it between the two statements, hence the loop.
    for _ in 0..3 {
        let existing: Option<Uuid> = sqlx::query_scalar("SELECT id FROM subjects WHERE collection = $1 AND name = $2")
            .bind(collection)
            .bind(name)
            .fetch_optional(&mut **tx)
            .await
            .context("read subject")?;
        if let Some(id) = existing {
            return Ok(id);
        }
        let inserted: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO subjects (id, collection, name) VALUES ($1, $2, $3) \
             ON CONFLICT (collection, name) DO NOTHING RETURNING id",
        )
        .bind(Uuid::now_v7())
        .bind(collection)
        .bind(name)
        .fetch_optional(&mut **tx)
        .await
        .context("insert subject")?;
        if let Some(id) = inserted {
            return Ok(id);
        }
    }
    Err(StoreError::Conflict("subject created and deleted concurrently"))
}
