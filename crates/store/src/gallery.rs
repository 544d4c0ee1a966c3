use facerec_core::{BBox, CollectionName, FaceQuality, SubjectName};
use pgvector::Vector;
use sqlx::FromRow;
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
    pub quality: FaceQuality,
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct SearchHit {
    pub face_id: Uuid,
    pub subject: String,
    pub similarity: f32,
}

impl Store {
    /// Stores the face (creating its subject if new) and ends the register job
    /// with `result`, in one transaction. False, writing nothing, when the claim was lost.
    pub async fn complete_register(
        &self,
        claim: &Claim,
        face: &NewFace,
        result: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.context("begin register")?;
        if !finish(&mut tx, claim.job.id, claim.token, JobStatus::Succeeded, Some(result), None).await? {
            return Ok(false);
        }
        let subject_id: Uuid = sqlx::query_scalar(
            "INSERT INTO subjects (id, collection, name) VALUES ($1, $2, $3) \
             ON CONFLICT (collection, name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        )
        .bind(Uuid::now_v7())
        .bind(face.collection.as_str())
        .bind(face.subject.as_str())
        .fetch_one(&mut *tx)
        .await
        .context("upsert subject")?;
        sqlx::query(
            "INSERT INTO faces (id, subject_id, collection, detector, embedder, embedding, bbox, detection_score, \
             quality, source_job_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(face.id)
        .bind(subject_id)
        .bind(face.collection.as_str())
        .bind(&face.detector)
        .bind(&face.embedder)
        .bind(Vector::from(face.embedding.clone()))
        .bind(sqlx::types::Json(face.bbox))
        .bind(face.detection_score)
        .bind(sqlx::types::Json(face.quality))
        .bind(claim.job.id.0)
        .execute(&mut *tx)
        .await
        .context("insert face")?;
        tx.commit().await.context("commit register")?;
        Ok(true)
    }

    /// The `limit` faces of `collection` nearest to `embedding` by cosine distance,
    /// among those made by `embedder` (whichever detector found them); similarity = 1 − distance.
    pub async fn search_faces(
        &self,
        collection: &CollectionName,
        embedder: &str,
        embedding: &[f32],
        limit: u32,
    ) -> Result<Vec<SearchHit>, StoreError> {
        let mut tx = self.pool.begin().await.context("begin search")?;
        // HNSW filtered by collection: keep scanning the graph until `limit`
        // rows pass the filter (pgvector 0.8 iterative scans), in exact order.
        sqlx::query("SET LOCAL hnsw.iterative_scan = strict_order")
            .execute(&mut *tx)
            .await
            .context("set iterative scan")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL hnsw.ef_search = {}", (limit * 2).max(40))))
            .execute(&mut *tx)
            .await
            .context("set ef_search")?;
        let hits = sqlx::query_as::<_, SearchHit>(
            "SELECT f.id AS face_id, s.name AS subject, (1 - (f.embedding <=> $1))::real AS similarity \
             FROM faces f JOIN subjects s ON s.id = f.subject_id \
             WHERE f.collection = $2 AND f.embedder = $3 \
             ORDER BY f.embedding <=> $1 LIMIT $4",
        )
        .bind(Vector::from(embedding.to_vec()))
        .bind(collection.as_str())
        .bind(embedder)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .context("search faces")?;
        tx.commit().await.context("commit search")?;
        Ok(hits)
    }
}
