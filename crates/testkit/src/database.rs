//! The database side of a test: [`TestDatabase`], a fresh migrated database
//! for tests of the store alone, and the SQL peeks a [`TestApp`] test makes
//! behind the api's back (row counts, a job's columns, table locks that hold
//! a worker mid-job, and waits for a statement to block on them).

use std::time::Duration;

use sqlx::Executor;

use crate::TestApp;
use crate::fresh_db::FreshDatabase;
use crate::wait::wait_every;

/// How long the lock waits below wait for a statement to block.
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// How often they look.
const LOCK_POLL: Duration = Duration::from_millis(20);

/// A fresh, migrated database of its own, for tests of the store alone
/// (no api, worker or models). [`TestDatabase::drop`] removes it.
pub struct TestDatabase {
    pub store: facerec_store::Store,
    pub db: sqlx::PgPool,
    pub database_url: String,
    database: FreshDatabase,
}

impl TestDatabase {
    pub async fn create() -> anyhow::Result<Self> {
        let database = FreshDatabase::create().await?;
        let store = facerec_store::Store::connect(&database.url, 10).await?;
        store.migrate().await?;
        let db = sqlx::PgPool::connect(&database.url).await?;
        Ok(Self { store, db, database_url: database.url.clone(), database })
    }

    /// Number of rows in `table` of this database.
    pub async fn count(&self, table: &str) -> i64 {
        count_rows(&self.db, table).await
    }

    pub async fn drop(self) -> anyhow::Result<()> {
        self.store.pool().close().await;
        self.db.close().await;
        self.database.remove().await
    }
}

async fn count_rows(db: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"))).fetch_one(db).await.unwrap()
}

impl TestApp {
    /// Number of rows in `table` of this test's database.
    pub async fn count(&self, table: &str) -> i64 {
        count_rows(&self.db, table).await
    }

    /// A text column of one job row, read straight from the database.
    pub async fn job_column(&self, id: &str, column: &str) -> Option<String> {
        let id: uuid::Uuid = id.parse().expect("a job id");
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {column} FROM jobs WHERE id = $1")))
            .bind(id)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// A job's status and attempt count, read straight from the database
    /// (also while the api is down or stopped).
    pub async fn status_and_attempts(&self, id: &str) -> (String, i32) {
        let id: uuid::Uuid = id.parse().expect("a job id");
        sqlx::query_as("SELECT status, attempts FROM jobs WHERE id = $1").bind(id).fetch_one(&self.db).await.unwrap()
    }

    /// Blocks every write to `table` until the returned transaction ends: a
    /// worker writing there keeps its job in hand meanwhile.
    pub async fn lock_table(&self, table: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
        let mut tx = self.db.begin().await.unwrap();
        tx.execute(sqlx::AssertSqlSafe(format!("LOCK TABLE {table} IN SHARE MODE"))).await.unwrap();
        tx
    }

    /// Waits (30 s at most) until some connection waits for a lock on `table`.
    pub async fn wait_until_blocked_on(&self, table: &str) {
        self.wait_until_statement_blocked_on(table, "%").await
    }

    /// Waits (30 s at most) until a statement like `pattern` (SQL `LIKE`)
    /// waits for a lock on `table`: that one, not a worker's background loop.
    pub async fn wait_until_statement_blocked_on(&self, table: &str, pattern: &str) {
        let describe = || format!("a statement like {pattern:?} to wait for a lock on {table}");
        let db = &self.db;
        wait_every(LOCK_WAIT, LOCK_POLL, describe, move || async move {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE NOT l.granted AND l.relation = $1::regclass AND a.query LIKE $2",
            )
            .bind(table)
            .bind(pattern)
            .fetch_one(db)
            .await
            .unwrap();
            waiting > 0
        })
        .await
    }

    /// Waits (30 s at most) until `connections` connections to this test's
    /// database wait for a lock of any kind (a table's, or a row's that
    /// another transaction holds): a request has reached the point where it
    /// waits for another one.
    pub async fn wait_until_waiting_for_locks(&self, connections: i64) {
        let describe = || format!("{connections} connections waiting for a lock");
        let db = &self.db;
        wait_every(LOCK_WAIT, LOCK_POLL, describe, move || async move {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(db)
            .await
            .unwrap();
            waiting >= connections
        })
        .await
    }
}
