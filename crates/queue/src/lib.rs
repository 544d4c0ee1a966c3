//! The work queue: typed, versioned job messages and how they travel through
//! Redis (apalis-redis), shared by the api (producer) and the worker (consumer).
//!
//! A message carries only the job id and kind; PostgreSQL holds everything
//! else, so a lost or duplicated message can never lose or duplicate work.
//! Async (tokio); the Redis connection is a multiplexed `ConnectionManager`.
//! Live frames take a path of their own, without jobs ([`LiveLink`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod announce;
mod live;
mod poll;
mod settings;

pub use announce::ANNOUNCE_SLACK;
pub use live::{LIVE_VERSION, LiveError, LiveLink, LiveOutcome, LiveReply, LiveRequest, now_ms};
pub use poll::{PushSignal, TickStrategy};
pub use settings::QueueArgs;

use apalis::prelude::{BackendExt, PollWith, TaskBuilder, TaskSink};
use apalis_core::backend::Vacuum;
use apalis_redis::{Config, ConnectionManager, RedisStorage};
use facerec_core::{JobId, JobKind};
use serde::{Deserialize, Serialize};

/// Version of [`JobMessage`]'s shape; bump when it changes incompatibly.
pub const MESSAGE_VERSION: u16 = 1;

/// Default Redis key prefix for the job queue.
pub const DEFAULT_QUEUE: &str = "facerec-jobs";

/// What goes through Redis for every job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobMessage {
    pub version: u16,
    pub job_id: JobId,
    pub kind: JobKind,
    /// W3C trace context of the request that created the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl JobMessage {
    pub fn new(job_id: JobId, kind: JobKind) -> Self {
        Self { version: MESSAGE_VERSION, job_id, kind, traceparent: None }
    }
}

pub type JobStorage = RedisStorage<JobMessage>;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot connect to Redis")]
    Connect(#[source] apalis_redis::RedisError),
    #[error("cannot clean finished messages from Redis")]
    Vacuum(#[source] apalis_redis::Error),
    #[error("cannot enqueue job {job_id}")]
    Push {
        job_id: JobId,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot enqueue {count} jobs")]
    PushMany {
        count: usize,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A handle on the job queue in Redis; cheap to clone.
#[derive(Clone)]
pub struct JobQueue {
    storage: JobStorage,
    conn: ConnectionManager,
    client: redis::Client,
    /// One push listener per process, whatever consumers apalis restarts.
    pushes: std::sync::Arc<std::sync::OnceLock<PushSignal>>,
    config: Config,
    name: String,
}

impl JobQueue {
    /// Connects to Redis; `queue` names the key prefix (one per deployment or test run).
    pub async fn connect(redis_url: &str, queue: &str) -> Result<Self, QueueError> {
        let conn = apalis_redis::connect(redis_url).await.map_err(QueueError::Connect)?;
        let client = redis::Client::open(redis_url).map_err(QueueError::Connect)?;
        let config = Config::default()
            .queue(queue)
            // Workers that die without saying so have their in-flight jobs
            // handed to a live worker after 3 missed 5 s heartbeats.
            .heartbeat_interval(Duration::from_secs(5))
            .missed_heartbeats(3)
            .batch_size(1)
            // A job's lease is its row's in PostgreSQL. apalis's own lock would
            // cost every job one more script call (a round trip that wakes the
            // worker mid-inference, and a scan of the whole waiting list) to
            // mark it "Running" in Redis, where nothing reads it. Fetching
            // already files a message under its worker, which is all that
            // re-enqueueing a dead worker's messages needs.
            .lock_tasks(false)
            // apalis's per-message PUBLISH on `tasks:*` channels: no one here
            // subscribes ([`PushSignal`] has a channel of its own).
            .emit_events(false);
        let storage = RedisStorage::new(conn.clone()).with_config(config.clone());
        Ok(Self { storage, conn, client, pushes: Default::default(), config, name: queue.to_owned() })
    }

    /// Enqueues a message ([`JobQueue::push_twice`]) and announces it if a
    /// consumer may be idle ([`ANNOUNCE_SLACK`]).
    pub async fn push(&self, message: JobMessage) -> Result<(), QueueError> {
        let job_id = message.job_id;
        self.push_twice(vec![message]).await.map_err(|source| QueueError::Push { job_id, source })?;
        self.announce_push(1).await;
        Ok(())
    }

    /// Enqueues messages in one Redis call and announces them at most once. For
    /// feeders that enqueue many jobs at a time: one round trip, and at most
    /// one wake-up of every idle consumer, instead of two round trips and a
    /// wake-up per message.
    pub async fn push_many(&self, messages: Vec<JobMessage>) -> Result<(), QueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        let count = messages.len();
        self.push_twice(messages).await.map_err(|source| QueueError::PushMany { count, source })?;
        self.announce_push(count).await;
        Ok(())
    }

    /// Sends messages in one Redis call (one Lua script: all of them or none),
    /// trying twice: the first command after Redis restarted fails while the
    /// connection manager reconnects. A message that did arrive the first time
    /// is harmless twice (workers claim jobs in PostgreSQL).
    async fn push_twice(&self, messages: Vec<JobMessage>) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut storage = self.storage.clone();
        if let Err(e) = storage.push_bulk(messages.clone()).await {
            let (count, first) = (messages.len(), messages.first().map(|m| m.job_id));
            tracing::warn!(count, first_job_id = ?first, error = %e, "enqueue failed; retrying once");
            storage.push_bulk(messages).await?;
        }
        Ok(())
    }

    /// Wakes idle consumers ([`PushSignal`]) if there may be any
    /// ([`ANNOUNCE_SLACK`]). apalis files every push under its scheduled set
    /// and announces none, so an idle worker would only find the job at its
    /// next tick. A lost announcement costs a tick.
    async fn announce_push(&self, count: usize) {
        if let Err(e) = announce::announce(&self.conn, &self.config, &self.pushes_channel(), count).await {
            tracing::debug!(error = %e, "could not announce a push");
        }
    }

    /// The channel on which pushes are announced.
    fn pushes_channel(&self) -> String {
        format!("{}:pushed", self.name)
    }

    /// Enqueues a message to be delivered at `at` (Redis keeps it in the
    /// queue's scheduled set until then), rounded up to the second.
    pub async fn push_at(&self, message: JobMessage, at: SystemTime) -> Result<(), QueueError> {
        let job_id = message.job_id;
        let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since_epoch.as_secs() + u64::from(since_epoch.subsec_nanos() > 0);
        let task = TaskBuilder::new(message).run_at_timestamp(secs).build();
        let mut storage = self.storage.clone();
        storage.push_task(task).await.map_err(|e| QueueError::Push { job_id, source: Box::new(e) })
    }

    /// A storage for a worker to consume from: an idle one looks for new jobs
    /// the moment one is pushed, and every `poll` (retries coming due).
    /// Needs a tokio runtime (it starts the push listener).
    pub fn consumer(&self, poll: Duration) -> PollWith<JobStorage, TickStrategy> {
        let pushes = self.pushes.get_or_init(|| PushSignal::listen(self.client.clone(), self.pushes_channel())).clone();
        RedisStorage::new(self.conn.clone())
            .with_config(self.config.clone())
            .poll_with_strategy(TickStrategy::with_pushes(poll, pushes))
    }

    /// Deletes the payloads and bookkeeping that apalis keeps in Redis for
    /// every message, for messages finished more than `older_than` ago (the job
    /// itself lives on in PostgreSQL). Returns how many were removed.
    pub async fn vacuum(&self, older_than: Duration) -> Result<usize, QueueError> {
        let mut storage = self.storage.clone();
        storage.vacuum_before(older_than).await.map_err(QueueError::Vacuum)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// True when Redis answers PING.
    pub async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_wire_format_is_stable() {
        let id: JobId = "0192a3b4-c5d6-7e8f-9012-3456789abcde".parse().unwrap();
        let json = serde_json::to_value(JobMessage::new(id, JobKind::Recognize)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"version": 1, "job_id": "0192a3b4-c5d6-7e8f-9012-3456789abcde", "kind": "recognize"})
        );
        let back: JobMessage = serde_json::from_value(json).unwrap();
        assert_eq!(back.job_id, id);
        assert_eq!(back.traceparent, None);
    }
}
