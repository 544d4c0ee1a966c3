//! Databases of a test's own on the server `DATABASE_URL` names: created
//! empty under a name that carries its creation time, so that databases left
//! by a crashed run are recognised and dropped an hour later.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sqlx::{Connection, Executor, PgConnection};

/// One test's database, until [`FreshDatabase::remove`].
pub(crate) struct FreshDatabase {
    /// Its connection URL.
    pub(crate) url: String,
    /// The server's `postgres` database, where databases are made and dropped.
    admin_url: String,
    name: String,
}

impl FreshDatabase {
    /// Creates an empty database (dropping stale ones first).
    pub(crate) async fn create() -> anyhow::Result<Self> {
        let server_url = std::env::var("DATABASE_URL").context("DATABASE_URL must be set (make test sets it)")?;
        let (admin_url, url, name) = fresh_database_urls(&server_url);
        let mut admin = PgConnection::connect(&admin_url).await.context("connecting to PostgreSQL")?;
        drop_stale_test_databases(&mut admin).await?;
        admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).await?;
        Ok(Self { url, admin_url, name })
    }

    /// Drops the database, whoever is still connected to it.
    pub(crate) async fn remove(&self) -> anyhow::Result<()> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))).await?;
        Ok(())
    }
}

/// (admin URL, URL of a new uniquely named database, its name) on the server of `server_url`.
fn fresh_database_urls(server_url: &str) -> (String, String, String) {
    let (base, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server_url, String::new()),
    };
    let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let name = format!("facerec_test_{secs}_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    (format!("{server}/postgres{query}"), format!("{server}/{name}{query}"), name)
}

/// Test databases left by runs that crashed more than an hour ago.
async fn drop_stale_test_databases(admin: &mut PgConnection) -> anyhow::Result<()> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'facerec\\_test\\_%'")
            .fetch_all(&mut *admin)
            .await?;
    for name in names {
        let created = name.split('_').nth(2).and_then(|s| s.parse::<u64>().ok()).unwrap_or(now);
        if now.saturating_sub(created) > 3600 {
            admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fresh_database_urls;

    #[test]
    fn a_fresh_database_sits_on_the_same_server_with_the_same_options() {
        let (admin, url, name) = fresh_database_urls("postgres://u:p@127.0.0.1:5432/facerec?sslmode=disable");
        assert_eq!(admin, "postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable");
        assert_eq!(url, format!("postgres://u:p@127.0.0.1:5432/{name}?sslmode=disable"));
        // facerec_test_<seconds>_<8 hex>: the creation time is what stale cleanup reads.
        let created = name.split('_').nth(2).and_then(|s| s.parse::<u64>().ok());
        assert!(name.starts_with("facerec_test_") && created.is_some(), "{name}");
    }
}
