//! PostgreSQL access for facerec: the connection pool, migrations, and every
//! query, returning domain types from `facerec-core` (a job as the typed
//! `JobRecord`; building what clients see of it is core's, not ours).
//!
//! PostgreSQL is the source of truth for jobs and the gallery. Job state moves
//! only through conditional updates here (`queued` → `processing` by a claim
//! with a lease; `processing` → terminal only by the claim holder), and each
//! result is written in the same transaction as its status change.
//! Async (sqlx on tokio); no business logic beyond keeping those rules.

mod batch_feed;
mod batch_record;
mod batches;
mod collections;
mod deletion;
mod error;
mod face_indexes;
mod gallery;
mod job_ends;
mod jobs;
mod keys;
mod listing;
mod recovery;
mod search;
mod settings;
mod subjects;
mod visibility;
mod webhooks;

pub use batch_feed::{BatchListener, BatchesEnded, DueBatchWebhook, FeedRound};
pub use batch_record::{BatchWriter, ItemContent, NewBatch, NewBatchItem};
pub use batches::{BatchCancel, BatchFilter};
pub use collections::{CollectionPatch, NewCollection};
pub use error::StoreError;
pub use gallery::{NewFace, RegisterOutcome};
pub use job_ends::JobEndListener;
pub use jobs::{CancelOutcome, Claim, ClaimOutcome, NewJob, Submitted};
pub use keys::{ApiKeyRecord, NewApiKey};
pub use listing::{JobCounts, JobFilter, QueueDepth};
pub use search::{HNSW_INDEX, SearchHit, SearchSettings, StoredFace, SubjectMatch};
pub use settings::DatabaseArgs;
pub use subjects::RenameOutcome;
pub use visibility::Visibility;
pub use webhooks::{DueWebhook, WebhookAttempt};

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::error::QueryContext;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// A pooled connection idle this long is pinged before it is used again.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The embedded migrations from the repository's `migrations/` folder.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    max_connections: u32,
    /// Recognize's in-memory indexes of large collections, built on first
    /// search (the api never searches, so never holds one); shared by clones.
    face_indexes: Arc<face_indexes::FaceIndexes>,
}

impl Store {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::connect_with(url, max_connections, Duration::from_secs(5)).await
    }

    /// A pool of at most `max_connections`, where a query waits at most
    /// `acquire_timeout` for a free connection.
    pub async fn connect_with(url: &str, max_connections: u32, acquire_timeout: Duration) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse().map_err(StoreError::Connect)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            // sqlx pings every connection it takes from the pool, a round trip
            // before every query (and, in the worker, a wake-up mid-inference
            // for each). A connection that has just answered is alive (our
            // sqlx-core no longer pings it as it goes back either: vendor/README.md);
            // only one idle for a while can have died since, e.g. across a
            // PostgreSQL restart: ping those alone.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await
            .map_err(StoreError::Connect)?;
        Ok(Self { pool, max_connections, face_indexes: Arc::default() })
    }

    pub fn from_pool(pool: PgPool) -> Self {
        let max_connections = pool.options().get_max_connections();
        Self { pool, max_connections, face_indexes: Arc::default() }
    }

    /// Every connection the pool may open is open: a query that timed out
    /// waiting for one met a busy pool, not a database that cannot be reached
    /// (which leaves the pool short of connections it failed to open).
    pub fn is_saturated(&self) -> bool {
        self.pool.size() >= self.max_connections
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies pending migrations; safe to run from several processes at once
    /// (sqlx takes an advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(StoreError::Migrate)
    }

    /// The newest migration applied, or `None` on a database never migrated.
    pub async fn schema_version(&self) -> Result<Option<i64>, StoreError> {
        let applied: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .context("look for the migrations table")?;
        if !applied {
            return Ok(None);
        }
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await
            .context("read the schema version")
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}
