//! Collections: created explicitly or by a register's submission, listed by
//! name, updated, and read with their counts (kept by triggers).

use chrono::{DateTime, Utc};
use facerec_core::{CollectionName, CollectionView};
use sqlx::{FromRow, Postgres, QueryBuilder, Transaction};

use crate::error::QueryContext;
use crate::{Store, StoreError, Visibility};

/// A collection to create.
#[derive(Debug, Clone)]
pub struct NewCollection {
    pub name: CollectionName,
    pub description: Option<String>,
    pub threshold: Option<f32>,
    pub require_consent: bool,
}

/// Changes to a collection; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct CollectionPatch {
    pub description: Option<Option<String>>,
    pub threshold: Option<Option<f32>>,
    pub require_consent: Option<bool>,
}

#[derive(FromRow)]
struct CollectionRow {
    name: String,
    description: Option<String>,
    threshold: Option<f32>,
    embedder: Option<String>,
    require_consent: bool,
    subject_count: i64,
    face_count: i64,
    created_at: DateTime<Utc>,
}

const COLUMNS: &str = "name, description, threshold, embedder, require_consent, subject_count, face_count, created_at";

impl From<CollectionRow> for CollectionView {
    fn from(r: CollectionRow) -> Self {
        Self {
            name: r.name,
            description: r.description,
            threshold: r.threshold,
            embedder: r.embedder,
            require_consent: r.require_consent,
            subject_count: r.subject_count,
            face_count: r.face_count,
            created_at: r.created_at,
        }
    }
}

impl Store {
    /// Creates the collection; `None` when one of that name exists.
    pub async fn create_collection(&self, new: &NewCollection) -> Result<Option<CollectionView>, StoreError> {
        let sql = format!(
            "INSERT INTO collections (name, description, threshold, require_consent) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING RETURNING {COLUMNS}"
        );
        let row: Option<CollectionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(new.name.as_str())
            .bind(&new.description)
            .bind(new.threshold)
            .bind(new.require_consent)
            .fetch_optional(&self.pool)
            .await
            .context("create collection")?;
        Ok(row.map(CollectionView::from))
    }

    pub async fn get_collection(&self, name: &CollectionName) -> Result<Option<CollectionView>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM collections WHERE name = $1");
        let row: Option<CollectionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .context("get collection")?;
        Ok(row.map(CollectionView::from))
    }

    /// Whether the collection exists (what a search checks before it answers "nobody").
    pub async fn collection_exists(&self, name: &CollectionName) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM collections WHERE name = $1)")
            .bind(name.as_str())
            .fetch_one(&self.pool)
            .await
            .context("find collection")
    }

    /// At most `limit` collections the caller may see named after `after`, by name (byte order).
    pub async fn list_collections(
        &self,
        after: Option<&str>,
        limit: u32,
        visible: &Visibility,
    ) -> Result<Vec<CollectionView>, StoreError> {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!("SELECT {COLUMNS} FROM collections WHERE ("));
        q.push_bind(after.map(str::to_owned)).push("::text IS NULL OR name COLLATE \"C\" > ");
        q.push_bind(after.map(str::to_owned)).push(")");
        visible.push_collection(&mut q, "name");
        q.push(" ORDER BY name COLLATE \"C\" LIMIT ").push_bind(i64::from(limit));
        let rows: Vec<CollectionRow> = q.build_query_as().fetch_all(&self.pool).await.context("list collections")?;
        Ok(rows.into_iter().map(CollectionView::from).collect())
    }

    /// Applies `patch`; `None` when the collection does not exist.
    pub async fn update_collection(
        &self,
        name: &CollectionName,
        patch: &CollectionPatch,
    ) -> Result<Option<CollectionView>, StoreError> {
        let sql = format!(
            "UPDATE collections SET \
                 description = CASE WHEN $2 THEN $3 ELSE description END, \
                 threshold = CASE WHEN $4 THEN $5 ELSE threshold END, \
                 require_consent = coalesce($6, require_consent) \
             WHERE name = $1 RETURNING {COLUMNS}"
        );
        let row: Option<CollectionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(name.as_str())
            .bind(patch.description.is_some())
            .bind(patch.description.clone().flatten())
            .bind(patch.threshold.is_some())
            .bind(patch.threshold.flatten())
            .bind(patch.require_consent)
            .fetch_optional(&self.pool)
            .await
            .context("update collection")?;
        Ok(row.map(CollectionView::from))
    }
}

/// Creates the collection with the server's defaults unless it exists (a
/// register's submission does this, so `default` and new names just work).
pub(crate) async fn ensure_collection(
    tx: &mut Transaction<'_, Postgres>,
    name: &CollectionName,
    require_consent: bool,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO collections (name, require_consent) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name.as_str())
        .bind(require_consent)
        .execute(&mut **tx)
        .await
        .context("ensure collection")?;
    Ok(())
}
