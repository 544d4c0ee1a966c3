//! A worker process: connects and loads the models ([`Worker::build`]), then
//! consumes the queue and runs its background loops until shutdown
//! ([`Worker::run_until`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use facerec_queue::{ConsumerSettings, JobQueue};
use facerec_store::Store;
use tracing::{info, warn};

use crate::Settings;
use crate::batches::batch_loop;
use crate::context::JobContext;
use crate::handler::handle_job;
use crate::maintenance::{reconcile_loop, vacuum_loop};
use crate::pool::PipelinePool;
use crate::probe::{self, Readiness};
use crate::webhook;

/// A worker process: connections and models loaded, ready to run.
pub struct Worker {
    settings: Arc<Settings>,
    store: Store,
    queue: JobQueue,
    pool: PipelinePool,
    readiness: Readiness,
    metrics_addr: Option<std::net::SocketAddr>,
}

impl Worker {
    /// Connects to PostgreSQL (applying migrations) and Redis, and loads the models.
    /// The metrics listener, when configured, answers from the start (not ready until the end).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let readiness = Readiness::default();
        let metrics_addr = match settings.metrics_addr {
            Some(addr) => Some(probe::serve(addr, readiness.clone()).await?),
            None => {
                facerec_telemetry::metrics::prometheus(probe::SERVICE);
                None
            }
        };
        probe::zero_counters();
        let (pipelines, jobs) = (settings.pipelines(), settings.jobs_in_hand());
        // Two connections per job in hand, the rest for webhook deliveries and maintenance.
        let store = Store::connect(settings.database.url.expose(), jobs as u32 * 2 + 6)
            .await
            .context("connecting to PostgreSQL")?;
        store.migrate().await.context("migrating the database")?;
        if !settings.search_in_memory && !store.hnsw_index_ready().await.context("looking for the HNSW index")? {
            warn!(
                index = facerec_store::HNSW_INDEX,
                "FACEREC_SEARCH_IN_MEMORY=false but faces have no HNSW index: collections over \
                 FACEREC_EXACT_SEARCH_MAX_FACES are searched by a full scan until it is built \
                 (docs/scaling.md, \"The HNSW index\")"
            );
        }
        let queue = JobQueue::connect(settings.queue.redis_url.expose(), &settings.queue.name)
            .await
            .context("connecting to Redis")?;
        let config = settings.pipeline_config();
        let pool = tokio::task::spawn_blocking(move || PipelinePool::load(&config, pipelines))
            .await?
            .context("loading the models")?;
        info!(model = pool.model_id(), pipelines, jobs_in_hand = jobs, queue = queue.name(), "worker ready");
        readiness.built(store.clone(), queue.clone());
        Ok(Self { settings: Arc::new(settings), store, queue, pool, readiness, metrics_addr })
    }

    /// Where `/metrics`, `/healthz` and `/readyz` are served, if anywhere.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_addr
    }

    /// Processes jobs until `shutdown` completes, then finishes the jobs in hand.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let ctx = JobContext {
            store: self.store,
            queue: self.queue.clone(),
            pool: self.pool,
            settings: self.settings.clone(),
        };
        let vacuum = tokio::spawn(vacuum_loop(self.queue.clone(), self.settings.clone()));
        let reconcile = tokio::spawn(reconcile_loop(ctx.store.clone(), self.queue.clone(), self.settings.clone()));
        let batches = tokio::spawn(batch_loop(ctx.store.clone(), self.queue.clone(), self.settings.clone()));
        // Deliveries run apart from inference: a slow receiver never holds a pipeline.
        let slots = webhook::delivery_slots();
        let webhooks = tokio::spawn(webhook::delivery_loop(ctx.store.clone(), self.settings.clone(), slots.clone()));
        let (stop_live, live_stopped) = tokio::sync::watch::channel(false);
        // The sender stays here (so the slots never see it vanish); the shutdown signal sends through a clone.
        let stop_signal = stop_live.clone();
        let live: Vec<_> = (0..self.settings.live_slots())
            .map(|_| tokio::spawn(crate::live::live_loop(ctx.clone(), live_stopped.clone())))
            .collect();
        let readiness = self.readiness;
        let consumer = ConsumerSettings {
            name: "facerec-worker".to_owned(),
            // More jobs than pipelines: a job waits for a pipeline already claimed
            // and read, and one finishes in the database while the next infers.
            concurrency: self.settings.jobs_in_hand(),
            poll: Duration::from_millis(self.settings.poll_interval_ms.max(10)),
            shutdown_timeout: Duration::from_secs(self.settings.shutdown_timeout_secs),
        };
        let handler = move |message| handle_job(message, ctx.clone());
        self.queue
            .consume(consumer, handler, async move {
                shutdown.await;
                readiness.stopping();
                let _ = stop_signal.send(true);
                info!("shutting down: finishing jobs in hand");
            })
            .await
            .context("running the queue consumer")?;
        // Frames in hand are answered (their apis wait a few seconds at most), then the slots end.
        let _ = stop_live.send(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        for task in live {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
        vacuum.abort();
        reconcile.abort();
        batches.abort();
        webhooks.abort();
        // An attempt ends within the receiver timeout (resolving, then sending).
        let deliveries = Duration::from_secs(self.settings.webhook_timeout_secs * 2 + 1);
        webhook::finish_deliveries(&slots, deliveries).await;
        Ok(())
    }
}
