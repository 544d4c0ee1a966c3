//! Job ends as they happen: PostgreSQL announces every job's end on a channel
//! (migration 12's trigger, whatever ended the job), and a [`JobEndListener`]
//! reads those announcements on a connection of its own.

use facerec_core::JobId;
use sqlx::postgres::{PgListener, PgPoolOptions};

use crate::{Store, StoreError};

/// The channel migration 12's trigger notifies, with the job id as payload.
const CHANNEL: &str = "facerec_job_end";

/// Announced job ends, on a dedicated connection.
pub struct JobEndListener {
    listener: PgListener,
}

impl Store {
    /// Opens a connection that listens for job ends: one of its own, with the
    /// pool's settings, since a listener keeps its connection for good.
    pub async fn listen_for_job_ends(&self) -> Result<JobEndListener, StoreError> {
        Ok(JobEndListener { listener: self.listen_on(CHANNEL).await? })
    }

    /// A listener on `channel`, on a connection of its own with the pool's settings.
    pub(crate) async fn listen_on(&self, channel: &'static str) -> Result<PgListener, StoreError> {
        let options = (*self.pool().connect_options()).clone();
        let own = PgPoolOptions::new().max_connections(1).connect_lazy_with(options);
        let mut listener = PgListener::connect_with(&own).await.map_err(StoreError::Connect)?;
        listener.listen(channel).await.map_err(|source| StoreError::Query { context: "listening", source })?;
        Ok(listener)
    }
}

impl JobEndListener {
    /// The next job to end. `None` when the connection was lost: ends announced
    /// meanwhile are missed (callers must look again), and the next call reconnects.
    pub async fn next(&mut self) -> Result<Option<JobId>, StoreError> {
        loop {
            let announced = self
                .listener
                .try_recv()
                .await
                .map_err(|source| StoreError::Query { context: "waiting for job ends", source })?;
            match announced {
                None => return Ok(None),
                // Only our trigger notifies this channel; anything else is skipped.
                Some(n) => {
                    if let Ok(id) = n.payload().parse() {
                        return Ok(Some(id));
                    }
                }
            }
        }
    }
}
