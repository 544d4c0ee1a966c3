//! The app under test and its lifecycle: the real api (from its library, on
//! a free loopback port) against a fresh database and a private Redis queue,
//! with real workers in this process when the test needs inference
//! ([`TestApp::spawn`]) and none when it does not ([`TestApp::api_only`]).
//! [`TestApp::stop`] shuts everything down and removes the database and the
//! queue's keys.

use anyhow::Context;
use clap::Parser;
use facerec_queue::JobQueue;
use futures::FutureExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::fresh_db::FreshDatabase;

/// A running api (and its workers, if any) on a private database and queue.
pub struct TestApp {
    pub base_url: String,
    pub client: reqwest::Client,
    /// Connection URL of this test's own database.
    pub database_url: String,
    pub db: sqlx::PgPool,
    /// The name (Redis key prefix) of this test's queue.
    pub queue: String,
    pub redis_url: String,
    /// This test's queue, for the queue peeks (queue.rs).
    pub(crate) job_queue: JobQueue,
    database: FreshDatabase,
    api: Option<Running>,
    workers: Vec<Running>,
    /// What [`TestApp::start_worker`] starts from, also on an api-only app.
    worker_settings: facerec_worker::Settings,
}

/// An api or worker running in this process, and how to tell it to shut down
/// (what SIGTERM does to the binaries).
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    fn shut_down(self) -> JoinHandle<anyhow::Result<()>> {
        let _ = self.stop.send(());
        self.task
    }
}

/// Adjusts settings before the app starts.
pub type Tweak<'a, T> = &'a dyn Fn(&mut T);

impl TestApp {
    /// The api and one worker, with the models loaded: for tests whose jobs run.
    pub async fn spawn() -> anyhow::Result<Self> {
        Self::spawn_with(&|_| {}, &|_| {}).await
    }

    /// As [`TestApp::spawn`], with the api's and the worker's settings adjusted.
    pub async fn spawn_with(
        api: Tweak<'_, facerec_api::Settings>,
        worker: Tweak<'_, facerec_worker::Settings>,
    ) -> anyhow::Result<Self> {
        let mut app = Self::start(api, worker).await?;
        app.start_worker(&|_| {}).await?;
        Ok(app)
    }

    /// The api alone: no worker and no model, so submitted jobs stay queued.
    /// For everything that needs no inference (keys, listings, contracts,
    /// refusals at the edge); [`TestApp::start_worker`] can still add one.
    pub async fn api_only() -> anyhow::Result<Self> {
        Self::api_only_with(&|_| {}).await
    }

    /// As [`TestApp::api_only`], with the api's settings adjusted.
    pub async fn api_only_with(api: Tweak<'_, facerec_api::Settings>) -> anyhow::Result<Self> {
        Self::start(api, &|_| {}).await
    }

    /// A fresh database (migrated by the api as it starts), a private queue
    /// and the api on a free port; the worker settings are kept for later.
    async fn start(
        api: Tweak<'_, facerec_api::Settings>,
        worker: Tweak<'_, facerec_worker::Settings>,
    ) -> anyhow::Result<Self> {
        facerec_telemetry::init_tracing("facerec-tests");
        let database = FreshDatabase::create().await?;
        let database_url = database.url.clone();
        let queue = format!("facerec-test-{}", uuid::Uuid::new_v4().simple());

        let mut api_settings = facerec_api::Settings::parse_from(["facerec-api"]);
        api_settings.addr = "127.0.0.1:0".parse()?;
        api_settings.database.url = database_url.clone().into();
        api_settings.queue.name = queue.clone();
        // Webhook receivers in tests listen on loopback.
        api_settings.webhook_allow_private = true;
        api(&mut api_settings);
        let redis_url = api_settings.queue.redis_url.expose().to_owned();
        let worker_settings = worker_settings(&database_url, &queue, worker);

        let built = facerec_api::Api::build(api_settings).await?;
        let base_url = format!("http://{}", built.local_addr());
        let (stop, rx) = oneshot::channel();
        let api = Running { stop, task: tokio::spawn(built.run_until(rx.map(|_| ()))) };
        let job_queue = JobQueue::connect(&redis_url, &queue).await.context("connecting to the test's queue")?;
        let db = sqlx::PgPool::connect(&database_url).await?;
        Ok(Self {
            base_url,
            client: reqwest::Client::new(),
            database_url,
            db,
            queue,
            redis_url,
            job_queue,
            database,
            api: Some(api),
            workers: Vec::new(),
            worker_settings,
        })
    }

    /// Starts another worker on this app's database and queue, with the
    /// first one's settings adjusted by `tweak`.
    pub async fn start_worker(&mut self, tweak: Tweak<'_, facerec_worker::Settings>) -> anyhow::Result<()> {
        let mut settings = self.worker_settings.clone();
        tweak(&mut settings);
        self.workers.push(start_worker(settings).await?);
        Ok(())
    }

    /// Tells the oldest running worker to shut down; its task ends when it has.
    pub fn shut_down_worker(&mut self) -> JoinHandle<anyhow::Result<()>> {
        assert!(!self.workers.is_empty(), "no worker is running");
        self.workers.remove(0).shut_down()
    }

    /// Tells the api to shut down; its task ends when it has.
    pub fn shut_down_api(&mut self) -> JoinHandle<anyhow::Result<()>> {
        self.api.take().expect("the api is running").shut_down()
    }

    /// Stops the api and the workers, then drops the database and the queue's keys.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let tasks: Vec<_> = self.api.take().into_iter().chain(self.workers.drain(..)).map(Running::shut_down).collect();
        for task in tasks {
            task.await??;
        }
        self.db.close().await;
        self.database.remove().await?;
        self.job_queue.purge().await.context("removing the test's queue")?;
        Ok(())
    }
}

/// A worker's settings for tests: this database and queue, one job at a
/// time, quick polls and retries; then `tweak`.
fn worker_settings(
    database_url: &str,
    queue: &str,
    tweak: Tweak<'_, facerec_worker::Settings>,
) -> facerec_worker::Settings {
    let mut settings = facerec_worker::Settings::parse_from(["facerec-worker"]);
    settings.database.url = database_url.to_owned().into();
    settings.queue.name = queue.to_owned();
    settings.intra_threads = 1;
    // One job at a time, none taken ahead: tests decide what runs when.
    settings.concurrency = 1;
    settings.prefetch = 0;
    settings.poll_interval_ms = 20;
    // Webhook receivers in tests listen on loopback; retries are fast.
    settings.webhook_allow_private = true;
    settings.webhook_poll_ms = 50;
    settings.webhook_backoff_ms = 100;
    tweak(&mut settings);
    settings
}

/// Builds a worker (models loaded) and runs it in this process.
async fn start_worker(settings: facerec_worker::Settings) -> anyhow::Result<Running> {
    let worker = facerec_worker::Worker::build(settings).await?;
    let (stop, rx) = oneshot::channel();
    Ok(Running { stop, task: tokio::spawn(worker.run_until(rx.map(|_| ()))) })
}
