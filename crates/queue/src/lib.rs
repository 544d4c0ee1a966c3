//! The work queue: typed, versioned job messages and how they travel through
//! Redis (apalis-redis), shared by the api (producer) and the worker (consumer).
//! The queue owns its wire: producers hand it the [`JobRef`](facerec_core::JobRef)s
//! the store returned ([`JobQueue::enqueue`], `enqueue.rs`), the worker takes
//! messages through [`JobQueue::consume`] (`consume.rs`), and tests and operators
//! look inside through `inspect.rs`; no other crate names apalis or its keys.
//!
//! A message carries only the job id, kind and trace context; PostgreSQL holds
//! everything else, so a lost or duplicated message can never lose or duplicate work.
//! Async (tokio); the Redis connection is a multiplexed `ConnectionManager`.
//! Live frames take a path of their own, without jobs ([`LiveLink`]).

use std::time::Duration;

mod announce;
mod consume;
mod enqueue;
mod inspect;
mod live;
mod message;
mod poll;
mod settings;

pub use announce::ANNOUNCE_SLACK;
pub use consume::ConsumerSettings;
pub use live::{LIVE_VERSION, LiveError, LiveLink, LiveOutcome, LiveReply, LiveRequest, now_ms};
pub use message::{JobMessage, MESSAGE_VERSION};
pub use settings::QueueArgs;

// How consumers are woken: apalis's polling, ours to tune, no one else's to see.
use poll::{PushSignal, TickStrategy};

use apalis_core::backend::Vacuum;
use apalis_redis::{Config, ConnectionManager, RedisStorage};
use facerec_core::JobId;

/// Default Redis key prefix for the job queue.
pub const DEFAULT_QUEUE: &str = "facerec-jobs";

type JobStorage = RedisStorage<JobMessage>;

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
    /// The consumer stopped with an error (apalis's, boxed).
    #[error("the queue consumer failed")]
    Consume(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot read the queue's keys in Redis")]
    Inspect(#[source] apalis_redis::RedisError),
    #[error("a message held in Redis is not JSON")]
    Payload(#[source] serde_json::Error),
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

    /// The channel on which pushes are announced (`announce.rs`) and heard ([`PushSignal`]).
    fn pushes_channel(&self) -> String {
        format!("{}:pushed", self.name)
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
