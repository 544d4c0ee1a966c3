//! API keys, stored only as their keyed hash (the api computes it; the
//! database never sees a key).

use chrono::{DateTime, Utc};
use facerec_core::Grant;
use sqlx::FromRow;
use uuid::Uuid;

use crate::error::{QueryContext, corrupt};
use crate::{Store, StoreError};

/// A key about to be stored.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: Uuid,
    pub name: String,
    pub key_hash: Vec<u8>,
    pub key_prefix: String,
    pub grant: Grant,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A stored key: everything but the key itself.
#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    pub name: String,
    pub key_prefix: String,
    pub grant: Grant,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(FromRow)]
struct ApiKeyRow {
    id: Uuid,
    name: String,
    key_prefix: String,
    actions: Vec<String>,
    collections: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ApiKeyRow> for ApiKeyRecord {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.id,
            name: r.name,
            key_prefix: r.key_prefix,
            grant: Grant::parse(&r.actions, &r.collections).map_err(corrupt("api key grant"))?,
            expires_at: r.expires_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const COLUMNS: &str = "id, name, key_prefix, actions, collections, expires_at, created_at, updated_at";

impl Store {
    pub async fn insert_api_key(&self, key: &NewApiKey) -> Result<ApiKeyRecord, StoreError> {
        let (actions, collections) = key.grant.to_wire();
        let sql = format!(
            "INSERT INTO api_keys (id, name, key_hash, key_prefix, actions, collections, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        );
        let row: ApiKeyRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(key.id)
            .bind(&key.name)
            .bind(&key.key_hash)
            .bind(&key.key_prefix)
            .bind(actions)
            .bind(collections)
            .bind(key.expires_at)
            .fetch_one(&self.pool)
            .await
            .context("insert api key")?;
        row.try_into()
    }

    /// The unexpired key with this hash (by the database's clock).
    pub async fn live_api_key(&self, key_hash: &[u8]) -> Result<Option<ApiKeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1 AND (expires_at IS NULL OR expires_at > now())"
        );
        let row: Option<ApiKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await
            .context("authenticate api key")?;
        row.map(ApiKeyRecord::try_from).transpose()
    }

    pub async fn get_api_key(&self, id: Uuid) -> Result<Option<ApiKeyRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1");
        let row: Option<ApiKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context("get api key")?;
        row.map(ApiKeyRecord::try_from).transpose()
    }

    /// Every key, oldest first (a deployment has tens, not millions).
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id");
        let rows: Vec<ApiKeyRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await.context("list api keys")?;
        rows.into_iter().map(ApiKeyRecord::try_from).collect()
    }

    /// Renames a key or changes its grant; `None` when it does not exist.
    pub async fn update_api_key(
        &self,
        id: Uuid,
        name: Option<&str>,
        grant: Option<&Grant>,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let (actions, collections) = grant.map(Grant::to_wire).unzip();
        let sql = format!(
            "UPDATE api_keys SET name = coalesce($2, name), actions = coalesce($3, actions), \
                 collections = coalesce($4, collections), updated_at = now() \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row: Option<ApiKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(name)
            .bind(actions)
            .bind(collections)
            .fetch_optional(&self.pool)
            .await
            .context("update api key")?;
        row.map(ApiKeyRecord::try_from).transpose()
    }

    /// Deletes a key: its next request is refused, on every api instance.
    pub async fn delete_api_key(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .context("delete api key")?;
        Ok(done.rows_affected() == 1)
    }
}
