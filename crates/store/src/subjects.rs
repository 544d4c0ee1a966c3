//! Reading the gallery: subjects of a collection (paged by name, by prefix),
//! one subject with its faces, faces by id or by collection; renaming a subject.

use chrono::{DateTime, Utc};
use facerec_core::{
    BBox, CollectionName, ConsentView, FaceQuality, FaceView, SubjectName, SubjectSummary, SubjectView,
};
use sqlx::types::Json;
use sqlx::{FromRow, Postgres, Transaction};
use uuid::Uuid;

use crate::error::QueryContext;
use crate::{Store, StoreError};

#[derive(FromRow)]
struct FaceRow {
    id: Uuid,
    subject: String,
    collection: String,
    bbox: Json<BBox>,
    detection_score: f32,
    landmarks: Option<Json<[[f32; 2]; 5]>>,
    quality: Option<Json<FaceQuality>>,
    detector: String,
    embedder: String,
    source_job_id: Option<Uuid>,
    created_at: DateTime<Utc>,
}

const FACE_COLUMNS: &str = "f.id, s.name AS subject, f.collection, f.bbox, f.detection_score, f.landmarks, \
     f.quality, f.detector, f.embedder, f.source_job_id, f.created_at";

impl From<FaceRow> for FaceView {
    fn from(r: FaceRow) -> Self {
        Self {
            face_id: r.id,
            subject: r.subject,
            collection: r.collection,
            bbox: r.bbox.0,
            detection_score: r.detection_score,
            landmarks: r.landmarks.map(|j| j.0),
            quality: r.quality.map(|j| j.0),
            detector: r.detector,
            embedder: r.embedder,
            source_job_id: r.source_job_id,
            created_at: r.created_at,
        }
    }
}

#[derive(FromRow)]
struct SubjectRow {
    id: Uuid,
    name: String,
    face_count: i64,
    consent_ref: Option<String>,
    consent_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

/// What a rename found.
#[derive(Debug, PartialEq, Eq)]
pub enum RenameOutcome {
    Renamed,
    NotFound,
    /// The collection already has a subject of the new name.
    NameTaken,
}

impl Store {
    /// At most `limit` subjects of `collection` whose names start with
    /// `prefix`, after `after`, by name. `None` when the collection does not exist.
    pub async fn list_subjects(
        &self,
        collection: &CollectionName,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Option<Vec<SubjectSummary>>, StoreError> {
        let mut tx = self.pool.begin().await.context("begin list subjects")?;
        if !collection_exists(&mut tx, collection).await? {
            return Ok(None);
        }
        // Byte order ("C"), the same on every install, so cursors and
        // prefixes are exact; `name >= prefix` lets the index start there.
        let rows: Vec<(String, i64, DateTime<Utc>)> = sqlx::query_as(
            "SELECT s.name, (SELECT count(*) FROM faces f WHERE f.subject_id = s.id), s.created_at \
             FROM subjects s WHERE s.collection = $1 \
                 AND ($2::text IS NULL OR (s.name COLLATE \"C\" >= $2 AND starts_with(s.name, $2))) \
                 AND ($3::text IS NULL OR s.name COLLATE \"C\" > $3) \
             ORDER BY s.name COLLATE \"C\" LIMIT $4",
        )
        .bind(collection.as_str())
        .bind(prefix)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .context("list subjects")?;
        tx.commit().await.context("commit list subjects")?;
        Ok(Some(
            rows.into_iter()
                .map(|(name, face_count, created_at)| SubjectSummary { name, face_count, created_at })
                .collect(),
        ))
    }

    /// The subject with all its faces, oldest first.
    pub async fn get_subject(
        &self,
        collection: &CollectionName,
        name: &SubjectName,
    ) -> Result<Option<SubjectView>, StoreError> {
        let mut tx = self.pool.begin().await.context("begin get subject")?;
        let row: Option<SubjectRow> = sqlx::query_as(
            "SELECT s.id, s.name, (SELECT count(*) FROM faces f WHERE f.subject_id = s.id) AS face_count, \
                 s.consent_ref, s.consent_at, s.created_at \
             FROM subjects s WHERE s.collection = $1 AND s.name = $2",
        )
        .bind(collection.as_str())
        .bind(name.as_str())
        .fetch_optional(&mut *tx)
        .await
        .context("get subject")?;
        let Some(row) = row else { return Ok(None) };
        let sql = format!(
            "SELECT {FACE_COLUMNS} FROM faces f JOIN subjects s ON s.id = f.subject_id \
             WHERE f.subject_id = $1 ORDER BY f.id"
        );
        let faces: Vec<FaceRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(row.id).fetch_all(&mut *tx).await.context("subject faces")?;
        tx.commit().await.context("commit get subject")?;
        let consent = match (row.consent_ref, row.consent_at) {
            (Some(reference), Some(given_at)) => Some(ConsentView { reference, given_at }),
            _ => None,
        };
        Ok(Some(SubjectView {
            name: row.name,
            collection: collection.as_str().to_owned(),
            face_count: row.face_count,
            faces: faces.into_iter().map(FaceView::from).collect(),
            consent,
            created_at: row.created_at,
        }))
    }

    pub async fn rename_subject(
        &self,
        collection: &CollectionName,
        name: &SubjectName,
        new_name: &SubjectName,
    ) -> Result<RenameOutcome, StoreError> {
        let renamed = sqlx::query("UPDATE subjects SET name = $3 WHERE collection = $1 AND name = $2")
            .bind(collection.as_str())
            .bind(name.as_str())
            .bind(new_name.as_str())
            .execute(&self.pool)
            .await;
        match renamed {
            Ok(done) if done.rows_affected() == 1 => Ok(RenameOutcome::Renamed),
            Ok(_) => Ok(RenameOutcome::NotFound),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(RenameOutcome::NameTaken),
            Err(e) => Err(StoreError::Query { context: "rename subject", source: e }),
        }
    }

    pub async fn get_face(&self, id: Uuid) -> Result<Option<FaceView>, StoreError> {
        let sql = format!("SELECT {FACE_COLUMNS} FROM faces f JOIN subjects s ON s.id = f.subject_id WHERE f.id = $1");
        let row: Option<FaceRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await.context("get face")?;
        Ok(row.map(FaceView::from))
    }

    /// At most `limit` faces of `collection` (of one subject, if given) after
    /// the face `after`, oldest first. `None` when the collection does not exist.
    pub async fn list_faces(
        &self,
        collection: &CollectionName,
        subject: Option<&SubjectName>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Option<Vec<FaceView>>, StoreError> {
        let mut tx = self.pool.begin().await.context("begin list faces")?;
        if !collection_exists(&mut tx, collection).await? {
            return Ok(None);
        }
        // Two statements, so each keeps a plan that uses its own index.
        let of_whom = match subject {
            Some(_) => "f.subject_id = (SELECT id FROM subjects WHERE collection = $1 AND name = $2)",
            None => "f.collection = $1 AND $2::text IS NULL",
        };
        let sql = format!(
            "SELECT {FACE_COLUMNS} FROM faces f JOIN subjects s ON s.id = f.subject_id \
             WHERE {of_whom} AND f.id > coalesce($3, '00000000-0000-0000-0000-000000000000'::uuid) \
             ORDER BY f.id LIMIT $4"
        );
        let rows: Vec<FaceRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(collection.as_str())
            .bind(subject.map(SubjectName::as_str))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .context("list faces")?;
        tx.commit().await.context("commit list faces")?;
        Ok(Some(rows.into_iter().map(FaceView::from).collect()))
    }
}

async fn collection_exists(tx: &mut Transaction<'_, Postgres>, name: &CollectionName) -> Result<bool, StoreError> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM collections WHERE name = $1")
        .bind(name.as_str())
        .fetch_optional(&mut **tx)
        .await
        .context("find collection")?;
    Ok(found.is_some())
}
