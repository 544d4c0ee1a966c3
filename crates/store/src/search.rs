//! Searching the gallery: the subjects nearest to an embedding in one
//! collection (recognize), and the faces a verify compares with.
//!
//! Small collections are searched exactly (every face, through the
//! (collection, embedder) b-tree). Large ones are searched through this
//! process's in-memory index of the collection (`face_indexes.rs`), whose
//! proposals are ranked by their exact cosine in PostgreSQL; or, with the
//! in-memory index turned off, through the HNSW index with `hnsw.ef_search`
//! set per query. The SQL queries live in `sql/` and are shared with the
//! search benchmark (`scripts/search_bench.py`).

use chrono::{DateTime, Utc};
use pgvector::Vector;
use sqlx::{Connection, FromRow, Postgres, Transaction};
use uuid::Uuid;

use facerec_core::{CollectionName, SubjectName};

use crate::error::QueryContext;
use crate::face_indexes::CollectionVersion;
use crate::{Store, StoreError};

const SEARCH_ANN: &str = include_str!("../sql/search_ann.sql");
const SEARCH_EXACT: &str = include_str!("../sql/search_exact.sql");
const RANK_PROPOSED: &str = include_str!("../sql/rank_proposed.sql");

/// How recognize searches; see `docs/scaling.md` for how these were chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchSettings {
    /// HNSW candidate list size (`hnsw.ef_search`); higher finds more of the
    /// true nearest faces and costs more time.
    pub ef_search: u32,
    /// Collections with at most this many faces are searched exactly.
    pub exact_max_faces: i64,
    /// Larger collections are searched through an in-memory index of the
    /// collection held by this process (true), or through PostgreSQL's HNSW
    /// index (false).
    pub in_memory: bool,
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self { ef_search: 100, exact_max_faces: 5_000, in_memory: true }
    }
}

/// How one search reads its collection's faces.
#[derive(Debug, Clone, Copy)]
enum Route {
    Exact,
    Hnsw { ef_search: u32 },
}

/// A subject found by a search: its most similar face.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub face_id: Uuid,
    pub subject: String,
    pub similarity: f32,
}

impl From<SearchHit> for facerec_core::FaceMatch {
    /// A match not yet compared with any threshold (see `BestMatch::mark`).
    fn from(h: SearchHit) -> Self {
        Self { subject: h.subject, face_id: h.face_id, similarity: h.similarity, is_match: false }
    }
}

#[derive(FromRow)]
struct FaceHit {
    face_id: Uuid,
    subject_id: Uuid,
    similarity: f32,
    /// The subject's name, where the query reads it too.
    #[sqlx(default)]
    subject: Option<String>,
}

/// Faces fetched per subject wanted: one person with many faces must not
/// crowd out the others, so the search widens until it has enough subjects.
const FACES_PER_SUBJECT: u32 = 4;
const MIN_FACES: u32 = 20;
const MAX_FACES: u32 = 4_000;

/// What a verify against a subject found.
#[derive(Debug, Clone, PartialEq)]
pub enum SubjectMatch {
    NotFound,
    NoFaces,
    /// The subject's face most similar to the embedding.
    Best {
        face_id: Uuid,
        similarity: f32,
    },
}

/// A stored face a verify compares with.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFace {
    pub collection: String,
    pub subject: String,
    pub embedder: String,
    pub embedding: Vec<f32>,
}

/// The HNSW index on faces, which `FACEREC_SEARCH_IN_MEMORY=false` needs
/// (migration 15 made it opt-in; docs/scaling.md builds it).
pub const HNSW_INDEX: &str = "faces_embedding_hnsw_idx";

impl Store {
    /// Whether the HNSW index exists and is usable (a failed concurrent build leaves an invalid one).
    pub async fn hnsw_index_ready(&self) -> Result<bool, StoreError> {
        let valid: Option<bool> = sqlx::query_scalar(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1",
        )
        .bind(HNSW_INDEX)
        .fetch_optional(&self.pool)
        .await
        .context("look for the hnsw index")?;
        Ok(valid == Some(true))
    }

    /// The `top_k` distinct subjects of `collection` nearest to `embedding`
    /// (cosine), each with its most similar face, among faces made by
    /// `embedder`; most similar first.
    pub async fn search_subjects(
        &self,
        collection: &CollectionName,
        embedder: &str,
        embedding: &[f32],
        top_k: u32,
        settings: SearchSettings,
    ) -> Result<Vec<SearchHit>, StoreError> {
        let mut conn = self.pool.acquire().await.context("connection for search")?;
        let row: Option<(i64, i64, DateTime<Utc>)> =
            sqlx::query_as("SELECT face_count, face_version, created_at FROM collections WHERE name = $1")
                .bind(collection.as_str())
                .fetch_optional(&mut *conn)
                .await
                .context("collection size")?;
        let Some((face_count, face_version, created_at)) = row.filter(|r| r.0 > 0) else {
            self.face_indexes.forget(collection.as_str());
            return Ok(Vec::new());
        };
        let route = if face_count <= settings.exact_max_faces {
            Route::Exact
        } else if settings.in_memory {
            let seen = CollectionVersion { created_at, face_version };
            return self.search_in_memory(&mut conn, collection, embedder, embedding, top_k, seen).await;
        } else {
            Route::Hnsw { ef_search: settings.ef_search }
        };
        self.face_indexes.forget(collection.as_str());
        let mut tx = conn.begin().await.context("begin search")?;
        let vector = Vector::from(embedding.to_vec());
        let mut limit = (top_k * FACES_PER_SUBJECT).max(MIN_FACES);
        let best = loop {
            let faces = nearest_faces(&mut tx, route, &vector, collection, embedder, limit).await?;
            let exhausted = faces.len() < limit as usize;
            let best = best_per_subject(faces);
            if best.len() >= top_k as usize || exhausted || limit >= MAX_FACES {
                break best;
            }
            limit = (limit * 4).min(MAX_FACES);
        };
        let best: Vec<FaceHit> = best.into_iter().take(top_k as usize).collect();
        let ids: Vec<Uuid> = best.iter().map(|h| h.subject_id).collect();
        let names: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, name FROM subjects WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .context("subject names")?;
        tx.commit().await.context("commit search")?;
        let name_of = |id: Uuid| names.iter().find(|(i, _)| *i == id).map(|(_, n)| n.clone());
        Ok(best
            .into_iter()
            .filter_map(|h| {
                Some(SearchHit { face_id: h.face_id, subject: name_of(h.subject_id)?, similarity: h.similarity })
            })
            .collect())
    }

    /// `search_subjects` through this process's in-memory index of the
    /// collection: the index proposes faces, PostgreSQL ranks them by their
    /// exact cosine (a face deleted meanwhile is not returned) and names
    /// their subjects, in one statement. No transaction: the index is
    /// brought up to at least the version read before, and the ranking reads
    /// what is committed when it runs (see `face_indexes.rs`).
    async fn search_in_memory(
        &self,
        conn: &mut sqlx::PgConnection,
        collection: &CollectionName,
        embedder: &str,
        embedding: &[f32],
        top_k: u32,
        seen: CollectionVersion,
    ) -> Result<Vec<SearchHit>, StoreError> {
        let vector = Vector::from(embedding.to_vec());
        let mut limit = (top_k * FACES_PER_SUBJECT).max(MIN_FACES);
        let best = loop {
            let proposed =
                self.face_indexes.nearest(conn, collection.as_str(), embedder, seen, embedding, limit as usize).await?;
            let exhausted = proposed.len() < limit as usize;
            let ids: Vec<Uuid> = proposed.iter().map(|c| c.face.id).collect();
            let faces: Vec<FaceHit> = sqlx::query_as(sqlx::AssertSqlSafe(RANK_PROPOSED))
                .bind(&vector)
                .bind(&ids)
                .fetch_all(&mut *conn)
                .await
                .context("rank proposed faces")?;
            let best = best_per_subject(faces);
            if best.len() >= top_k as usize || exhausted || limit >= MAX_FACES {
                break best;
            }
            limit = (limit * 4).min(MAX_FACES);
        };
        Ok(best
            .into_iter()
            .take(top_k as usize)
            .filter_map(|h| Some(SearchHit { face_id: h.face_id, subject: h.subject?, similarity: h.similarity }))
            .collect())
    }

    /// The face of the subject most similar to `embedding` (exact; a subject has few faces).
    pub async fn best_face_of_subject(
        &self,
        collection: &CollectionName,
        subject: &SubjectName,
        embedder: &str,
        embedding: &[f32],
    ) -> Result<SubjectMatch, StoreError> {
        let mut tx = self.pool.begin().await.context("begin subject match")?;
        let id: Option<Uuid> = sqlx::query_scalar("SELECT id FROM subjects WHERE collection = $1 AND name = $2")
            .bind(collection.as_str())
            .bind(subject.as_str())
            .fetch_optional(&mut *tx)
            .await
            .context("find subject")?;
        let Some(id) = id else { return Ok(SubjectMatch::NotFound) };
        let best: Option<(Uuid, f32)> = sqlx::query_as(
            "SELECT id, (1 - (embedding <=> $1))::real FROM faces WHERE subject_id = $2 AND embedder = $3 \
             ORDER BY (embedding <=> $1) + 0 LIMIT 1",
        )
        .bind(Vector::from(embedding.to_vec()))
        .bind(id)
        .bind(embedder)
        .fetch_optional(&mut *tx)
        .await
        .context("best face of subject")?;
        tx.commit().await.context("commit subject match")?;
        Ok(best.map_or(SubjectMatch::NoFaces, |(face_id, similarity)| SubjectMatch::Best { face_id, similarity }))
    }

    /// A stored face with its embedding.
    pub async fn stored_face(&self, id: Uuid) -> Result<Option<StoredFace>, StoreError> {
        let row: Option<(String, String, String, Vector)> = sqlx::query_as(
            "SELECT f.collection, s.name, f.embedder, f.embedding FROM faces f \
             JOIN subjects s ON s.id = f.subject_id WHERE f.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .context("stored face")?;
        Ok(row.map(|(collection, subject, embedder, embedding)| StoredFace {
            collection,
            subject,
            embedder,
            embedding: embedding.to_vec(),
        }))
    }
}

async fn nearest_faces(
    tx: &mut Transaction<'_, Postgres>,
    route: Route,
    vector: &Vector,
    collection: &CollectionName,
    embedder: &str,
    limit: u32,
) -> Result<Vec<FaceHit>, StoreError> {
    if let Route::Hnsw { ef_search } = route {
        // sqlx prepares statements per connection, and after five runs
        // PostgreSQL may switch to a generic plan that, with many small
        // collections in the table, reads the collection through its b-tree
        // and sorts it all (measured: 116 ms instead of 8 ms at 100k faces).
        sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
            .execute(&mut **tx)
            .await
            .context("set plan cache mode")?;
        // Keep scanning the graph until `limit` rows pass the collection
        // filter (pgvector 0.8 iterative scans), in exact distance order.
        sqlx::query("SET LOCAL hnsw.iterative_scan = strict_order")
            .execute(&mut **tx)
            .await
            .context("set iterative scan")?;
        let ef = ef_search.max(limit);
        sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL hnsw.ef_search = {ef}")))
            .execute(&mut **tx)
            .await
            .context("set ef_search")?;
    }
    let sql = if matches!(route, Route::Hnsw { .. }) { SEARCH_ANN } else { SEARCH_EXACT };
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(vector)
        .bind(collection.as_str())
        .bind(embedder)
        .bind(i64::from(limit))
        .fetch_all(&mut **tx)
        .await
        .context("search faces")
}

/// Each subject's most similar face, most similar first.
fn best_per_subject(mut faces: Vec<FaceHit>) -> Vec<FaceHit> {
    faces.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
    let mut seen = std::collections::HashSet::new();
    faces.retain(|f| seen.insert(f.subject_id));
    faces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_subject_with_its_best_face() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let hit = |face: u128, subject_id, similarity| FaceHit {
            face_id: Uuid::from_u128(face),
            subject_id,
            similarity,
            subject: None,
        };
        let best = best_per_subject(vec![hit(10, a, 0.5), hit(11, b, 0.6), hit(12, a, 0.9), hit(13, b, 0.1)]);
        let got: Vec<(Uuid, f32)> = best.iter().map(|h| (h.face_id, h.similarity)).collect();
        assert_eq!(got, [(Uuid::from_u128(12), 0.9), (Uuid::from_u128(11), 0.6)]);
    }
}
