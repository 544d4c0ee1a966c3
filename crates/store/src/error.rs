//! The store's one error type, and the helpers that attach what failed.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to PostgreSQL")]
    Connect(#[source] sqlx::Error),
    #[error("cannot apply database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("database query failed: {context}")]
    Query {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("{0} changed while we read it; try again")]
    Conflict(&'static str),
    #[error("stored {what} is not valid")]
    Corrupt {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Maps a value read from the database that does not parse to [`StoreError::Corrupt`].
pub(crate) fn corrupt<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Corrupt { what, source: Box::new(e) }
}

pub(crate) trait QueryContext<T> {
    fn context(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> QueryContext<T> for Result<T, sqlx::Error> {
    fn context(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { context, source })
    }
}

impl StoreError {
    /// No pooled connection became free in time: the pool is busy, or the
    /// database cannot be reached (see [`crate::Store::is_saturated`]).
    pub fn is_pool_timeout(&self) -> bool {
        matches!(self, Self::Connect(sqlx::Error::PoolTimedOut) | Self::Query { source: sqlx::Error::PoolTimedOut, .. })
    }

    /// The database could not be reached (down, restarting, pool exhausted), as
    /// opposed to a query that failed: worth retrying later.
    pub fn is_unavailable(&self) -> bool {
        let source = match self {
            Self::Connect(e) | Self::Query { source: e, .. } => e,
            _ => return false,
        };
        match source {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => true,
            // The server said so: connection exceptions (08), too many
            // connections (53300), shutting down or starting up (57P01–57P03).
            sqlx::Error::Database(e) => {
                e.code().is_some_and(|code| code.starts_with("08") || code == "53300" || code.starts_with("57P"))
            }
            _ => false,
        }
    }
}
