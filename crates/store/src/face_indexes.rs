//! Recognize's in-memory face indexes (`facerec-face-index`): one per large
//! collection this process searches, loaded from PostgreSQL on first use and
//! brought up to date before every search from the `face_changes` log
//! (migration 13), so a search sees every face committed before it read the
//! collection's version.
//!
//! An index only proposes faces: the store re-reads the proposed faces and
//! ranks them by their exact cosine, so a face deleted meanwhile is never
//! returned, whatever the index still holds. No snapshot is needed for this:
//! changes of one collection commit in version order, re-applying a change is
//! harmless (an added face is inserted again, a removed one is already gone),
//! and a face read back after its deletion was logged is simply not found.
//!
//! Threading: the map is behind a plain mutex held for lookups only; each
//! collection has an async refresh lock (one load or catch-up at a time) and
//! an async read-write lock around its index; the search itself runs on the
//! blocking pool, holding a read guard.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use facerec_face_index::{Candidate, FaceIndex, FaceRef, mean_direction, shortlist_for};
use futures::TryStreamExt;
use pgvector::Vector;
use sqlx::PgConnection;
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::StoreError;
use crate::error::QueryContext;

/// Faces read to find a new index's centre.
const CENTRE_SAMPLE: i64 = 20_000;

/// A collection's identity and version as a search read them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CollectionVersion {
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) face_version: i64,
}

#[derive(Default)]
pub(crate) struct FaceIndexes {
    collections: Mutex<HashMap<String, Arc<Entry>>>,
}

impl std::fmt::Debug for FaceIndexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.collections.lock().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        f.debug_struct("FaceIndexes").field("collections", &names).finish()
    }
}

#[derive(Default)]
struct Entry {
    refresh: tokio::sync::Mutex<()>,
    state: Arc<RwLock<Option<Loaded>>>,
}

struct Loaded {
    created_at: DateTime<Utc>,
    embedder: String,
    version: i64,
    index: FaceIndex,
}

impl Loaded {
    fn serves(&self, embedder: &str, seen: CollectionVersion) -> bool {
        self.created_at == seen.created_at && self.embedder == embedder && self.version >= seen.face_version
    }
}

impl FaceIndexes {
    /// The `limit` faces of `collection` most similar to `query` by the
    /// index's approximate similarity, most similar first; the index is first
    /// brought up to at least `seen`, the version the caller read.
    pub(crate) async fn nearest(
        &self,
        conn: &mut PgConnection,
        collection: &str,
        embedder: &str,
        seen: CollectionVersion,
        query: &[f32],
        limit: usize,
    ) -> Result<Vec<Candidate>, StoreError> {
        let entry = self.entry(collection);
        refresh(&entry, conn, collection, embedder, seen).await?;
        let state = entry.state.clone().read_owned().await;
        let query = query.to_vec();
        let found = tokio::task::spawn_blocking(move || {
            let loaded = state.as_ref().expect("refreshed above; never unloaded");
            loaded.index.search(&query, shortlist_for(loaded.index.len()), limit)
        })
        .await
        .map_err(|e| StoreError::Corrupt { what: "face index search", source: Box::new(e) })?;
        found.map_err(|e| StoreError::Corrupt { what: "embedding to search", source: Box::new(e) })
    }

    /// Drops the index of a collection that is gone or small again.
    pub(crate) fn forget(&self, collection: &str) {
        if let Ok(mut map) = self.collections.lock() {
            map.remove(collection);
        }
    }

    fn entry(&self, collection: &str) -> Arc<Entry> {
        let mut map = self.collections.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(collection.to_owned()).or_default().clone()
    }
}

async fn refresh(
    entry: &Entry,
    conn: &mut PgConnection,
    collection: &str,
    embedder: &str,
    seen: CollectionVersion,
) -> Result<(), StoreError> {
    if entry.state.read().await.as_ref().is_some_and(|l| l.serves(embedder, seen)) {
        return Ok(());
    }
    let _refreshing = entry.refresh.lock().await;
    let behind = {
        let state = entry.state.read().await;
        match state.as_ref() {
            Some(l) if l.serves(embedder, seen) => return Ok(()),
            Some(l) if l.created_at == seen.created_at && l.embedder == embedder => Some(l.version),
            _ => None,
        }
    };
    if let Some(from) = behind
        && let Some(changes) = changes_since(conn, collection, embedder, from, seen.face_version).await?
    {
        let mut state = entry.state.write().await;
        let loaded = state.as_mut().expect("a loaded index is only ever replaced");
        for id in &changes.removed {
            loaded.index.remove(*id);
        }
        for (face, embedding) in &changes.added {
            insert(&mut loaded.index, *face, embedding)?;
        }
        loaded.version = seen.face_version;
        return Ok(());
    }
    let index = load(conn, collection, embedder).await?;
    tracing::info!(collection, faces = index.len(), "loaded the collection's face index");
    *entry.state.write().await =
        Some(Loaded { created_at: seen.created_at, embedder: embedder.to_owned(), version: seen.face_version, index });
    Ok(())
}

fn insert(index: &mut FaceIndex, face: FaceRef, embedding: &[f32]) -> Result<(), StoreError> {
    index.insert(face, embedding).map_err(|e| StoreError::Corrupt { what: "stored embedding", source: Box::new(e) })
}

/// Every face of the collection, streamed into a new index.
async fn load(conn: &mut PgConnection, collection: &str, embedder: &str) -> Result<FaceIndex, StoreError> {
    let sample: Vec<Vector> =
        sqlx::query_scalar("SELECT embedding FROM faces WHERE collection = $1 AND embedder = $2 LIMIT $3")
            .bind(collection)
            .bind(embedder)
            .bind(CENTRE_SAMPLE)
            .fetch_all(&mut *conn)
            .await
            .context("sample the collection's faces")?;
    let dim = sample.first().map_or(0, |v| v.as_slice().len());
    let mut index = FaceIndex::new(mean_direction(dim, sample.iter().map(Vector::as_slice)));
    drop(sample);
    let mut rows = sqlx::query_as::<_, (Uuid, Uuid, Vector)>(
        "SELECT id, subject_id, embedding FROM faces WHERE collection = $1 AND embedder = $2",
    )
    .bind(collection)
    .bind(embedder)
    .fetch(&mut *conn);
    while let Some((id, subject, embedding)) = rows.try_next().await.context("load the collection's faces")? {
        insert(&mut index, FaceRef { id, subject }, embedding.as_slice())?;
    }
    Ok(index)
}

struct Changes {
    removed: HashSet<Uuid>,
    added: Vec<(FaceRef, Vec<f32>)>,
}

/// The faces removed and added after version `from` up to `to`, or None
/// when the log no longer holds all of them (pruned: reload instead).
async fn changes_since(
    conn: &mut PgConnection,
    collection: &str,
    embedder: &str,
    from: i64,
    to: i64,
) -> Result<Option<Changes>, StoreError> {
    let log: Vec<(Vec<Uuid>, Vec<Uuid>)> = sqlx::query_as(
        "SELECT added, removed FROM face_changes WHERE collection = $1 AND version > $2 AND version <= $3",
    )
    .bind(collection)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await
    .context("read face changes")?;
    if i64::try_from(log.len()).ok() != Some(to - from) {
        return Ok(None);
    }
    let removed: HashSet<Uuid> = log.iter().flat_map(|(_, removed)| removed.iter().copied()).collect();
    // A face added and removed within the range is not read back: it is gone.
    let wanted: Vec<Uuid> = log.iter().flat_map(|(added, _)| added.iter().copied()).collect();
    let added: Vec<(Uuid, Uuid, Vector)> = sqlx::query_as(
        "SELECT id, subject_id, embedding FROM faces WHERE id = ANY($1) AND collection = $2 AND embedder = $3",
    )
    .bind(&wanted)
    .bind(collection)
    .bind(embedder)
    .fetch_all(&mut *conn)
    .await
    .context("read added faces")?;
    let added = added.into_iter().map(|(id, subject, e)| (FaceRef { id, subject }, e.to_vec())).collect();
    Ok(Some(Changes { removed, added }))
}

impl crate::Store {
    /// Deletes `face_changes` entries older than `age`, keeping each
    /// collection's latest (an index further behind reloads its collection).
    pub async fn prune_face_changes(&self, age: std::time::Duration) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM face_changes ch WHERE ch.at < now() - $1 * interval '1 second' \
             AND ch.version < (SELECT c.face_version FROM collections c WHERE c.name = ch.collection)",
        )
        .bind(age.as_secs_f64())
        .execute(&self.pool)
        .await
        .context("prune face changes")?;
        Ok(done.rows_affected())
    }
}
