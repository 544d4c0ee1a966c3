//! What a test's queue holds, read through [`facerec_queue::JobQueue`]'s own
//! inspection methods: the queue crate alone knows how messages sit in Redis.

use serde_json::Value;

use crate::TestApp;

impl TestApp {
    /// A connection to the Redis that carries this test's queue.
    pub async fn redis(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.redis_url.as_str())?.get_multiplexed_async_connection().await
    }

    /// Number of job messages this test's queue holds: every message pushed,
    /// waiting or taken, until a worker's vacuum removes it.
    pub async fn queue_messages(&self) -> usize {
        self.job_queue.held_count().await.expect("the queue's messages")
    }

    /// Number of keys this test's queue keeps about its messages (bookkeeping
    /// per message, gone once a worker's vacuum has removed them).
    pub async fn message_keys(&self) -> usize {
        self.job_queue.bookkeeping_keys().await.expect("the queue's bookkeeping keys")
    }

    /// The JSON payloads of every message this test's queue holds.
    pub async fn queue_payloads(&self) -> Vec<Value> {
        self.job_queue.held_payloads().await.expect("the queue's messages")
    }

    /// When each message the worker scheduled for later comes due (unix seconds).
    pub async fn scheduled_due(&self) -> Vec<u64> {
        self.job_queue.scheduled_due().await.expect("the queue's scheduled messages")
    }
}
