//! Consuming the queue: the apalis monitor and worker that take messages from
//! Redis and hand each to the worker's handler, so that no other crate needs
//! apalis's types. Runs on the tokio runtime, at most `concurrency` messages
//! at a time.
//!
//! A handler's error leaves the message unacknowledged: apalis delivers it
//! again later (waiting longer each time). A consumer whose stream fails (Redis
//! gone) is restarted under a new name until shutdown.

use std::future::Future;
use std::time::Duration;

use apalis::prelude::{BackendExt, Monitor, PollWith, WorkerBuilder, WorkerBuilderExt, task_fn};
use apalis_redis::RedisStorage;

use crate::{JobMessage, JobQueue, JobStorage, PushSignal, QueueError, TickStrategy};

/// How a worker process consumes the queue.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Prefix of the consumer's name in Redis; a unique suffix is added.
    pub name: String,
    /// Messages handled at once.
    pub concurrency: usize,
    /// How often an idle consumer looks for messages no push announced
    /// (retries coming due, pushes missed while the listener reconnected).
    pub poll: Duration,
    /// Once shutdown is asked, how long the messages in hand may take to finish.
    pub shutdown_timeout: Duration,
}

impl JobQueue {
    /// Hands every message to `handler`, `settings.concurrency` at a time,
    /// until `shutdown` completes; then waits for the messages in hand, up to
    /// `settings.shutdown_timeout`. An `Err` from the handler has the message
    /// delivered again later.
    pub async fn consume<H, F, E>(
        &self,
        settings: ConsumerSettings,
        handler: H,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), QueueError>
    where
        H: Fn(JobMessage) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    {
        let ConsumerSettings { name, concurrency, poll, shutdown_timeout } = settings;
        // apalis-redis refuses a worker name seen within the last heartbeat, so
        // every process and every restart gets its own.
        let instance = format!("{name}-{}", uuid::Uuid::new_v4().simple());
        let queue = self.clone();
        Monitor::new()
            .register(move |restarts| {
                WorkerBuilder::new(format!("{instance}-{restarts}"))
                    .backend(queue.consumer(poll))
                    .concurrency(concurrency)
                    .build(task_fn::<H, JobMessage, ()>(handler.clone()))
            })
            .should_restart(|worker, error| {
                tracing::warn!(worker = worker.name(), %error, "queue consumer stopped; restarting it");
                true
            })
            .shutdown_timeout(shutdown_timeout)
            .run_with_signal(async move {
                shutdown.await;
                Ok(())
            })
            .await
            .map_err(|e| QueueError::Consume(Box::new(e)))
    }

    /// A storage to consume from: an idle consumer looks for new jobs the
    /// moment one is pushed, and every `poll` (retries coming due). Needs a
    /// tokio runtime (it starts the push listener, one per process).
    fn consumer(&self, poll: Duration) -> PollWith<JobStorage, TickStrategy> {
        let pushes = self.pushes.get_or_init(|| PushSignal::listen(self.client.clone(), self.pushes_channel())).clone();
        RedisStorage::new(self.conn.clone())
            .with_config(self.config.clone())
            .poll_with_strategy(TickStrategy::with_pushes(poll, pushes))
    }
}
