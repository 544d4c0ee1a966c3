//! End-to-end test harness for facerec: [`TestApp::spawn`] starts the real
//! api (on a free port) and a real worker in-process, against a fresh
//! PostgreSQL database and a private Redis queue, with the real models.
//! Each test gets its own; [`TestApp::stop`] removes both again.
//!
//! Configuration comes from the same environment as the binaries
//! (`DATABASE_URL` names the server, not the database; `REDIS_URL`,
//! `ORT_DYLIB_PATH`, model paths), which `make test` sets.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use futures::FutureExt;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use reqwest;
pub use serde_json;

mod keys;
mod live;
pub mod process;
mod proxy;
mod receiver;

pub use keys::{Key, MASTER_KEY, bearer, client_with_authorization, key_of};
pub use live::{Closed, LiveStream, camera_frame, resident_bytes, resident_bytes_of, y4m_video};
pub use proxy::Proxy;
pub use receiver::WebhookReceiver;

/// A running api + worker pair on a private database and queue.
pub struct TestApp {
    pub base_url: String,
    pub client: reqwest::Client,
    /// Connection URL of this test's own database.
    pub database_url: String,
    pub db: sqlx::PgPool,
    pub queue: String,
    pub redis_url: String,
    admin_url: String,
    database: String,
    api: Option<Running>,
    workers: Vec<Running>,
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
    pub async fn spawn() -> anyhow::Result<Self> {
        Self::spawn_with(&|_| {}, &|_| {}).await
    }

    pub async fn spawn_with(
        api: Tweak<'_, facerec_api::Settings>,
        worker: Tweak<'_, facerec_worker::Settings>,
    ) -> anyhow::Result<Self> {
        facerec_telemetry::init_tracing("facerec-tests");
        let server_url = std::env::var("DATABASE_URL").context("DATABASE_URL must be set (make test sets it)")?;
        let (admin_url, database_url, database) = fresh_database_urls(&server_url);
        let mut admin = PgConnection::connect(&admin_url).await.context("connecting to PostgreSQL")?;
        drop_stale_test_databases(&mut admin).await?;
        admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{database}\""))).await?;
        let queue = format!("facerec-test-{}", uuid::Uuid::new_v4().simple());

        let mut api_settings = facerec_api::Settings::parse_from(["facerec-api"]);
        api_settings.addr = "127.0.0.1:0".parse()?;
        api_settings.database.url = database_url.clone().into();
        api_settings.queue.name = queue.clone();
        // Webhook receivers in tests listen on loopback.
        api_settings.webhook_allow_private = true;
        api(&mut api_settings);
        let redis_url = api_settings.queue.redis_url.expose().to_owned();

        let mut worker_settings = facerec_worker::Settings::parse_from(["facerec-worker"]);
        worker_settings.database.url = database_url.clone().into();
        worker_settings.queue.name = queue.clone();
        worker_settings.intra_threads = 1;
        // One job at a time, none taken ahead: tests decide what runs when.
        worker_settings.concurrency = 1;
        worker_settings.prefetch = 0;
        worker_settings.poll_interval_ms = 20;
        // Webhook receivers in tests listen on loopback; retries are fast.
        worker_settings.webhook_allow_private = true;
        worker_settings.webhook_poll_ms = 50;
        worker_settings.webhook_backoff_ms = 100;
        worker(&mut worker_settings);

        let api = facerec_api::Api::build(api_settings).await?;
        let base_url = format!("http://{}", api.local_addr());
        let (stop, rx) = oneshot::channel();
        let api = Running { stop, task: tokio::spawn(api.run_until(rx.map(|_| ()))) };
        let worker = start_worker(worker_settings.clone()).await?;
        let db = sqlx::PgPool::connect(&database_url).await?;
        Ok(Self {
            base_url,
            client: reqwest::Client::new(),
            database_url,
            db,
            queue,
            redis_url,
            admin_url,
            database,
            api: Some(api),
            workers: vec![worker],
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

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Posts a multipart form with `image` (as a file part) and text fields.
    pub async fn post_form(&self, path: &str, image: Option<Vec<u8>>, fields: &[(&str, &str)]) -> reqwest::Response {
        self.post_form_with_headers(path, image, fields, &[]).await
    }

    pub async fn post_form_with_headers(
        &self,
        path: &str,
        image: Option<Vec<u8>>,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).multipart(form(image, fields));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.expect("request reaches the api")
    }

    /// Submits a job and returns its id, asserting the `202` answer.
    pub async fn submit(&self, path: &str, image: Vec<u8>, fields: &[(&str, &str)]) -> String {
        let resp = self.post_form(path, Some(image), fields).await;
        assert_eq!(resp.status(), 202, "submission refused: {}", resp.text().await.unwrap_or_default());
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        let body: Value = resp.json().await.unwrap();
        let id = body["job_id"].as_str().expect("job_id in body").to_owned();
        assert_eq!(location, format!("/v1/jobs/{id}"));
        assert_eq!(body["status"], "queued");
        id
    }

    pub async fn get_job(&self, id: &str) -> (u16, Value) {
        self.get_json(&format!("/v1/jobs/{id}")).await
    }

    /// Polls the job, as a client would, until it reaches a terminal state (60 s at most).
    pub async fn wait_for_job(&self, id: &str) -> Value {
        wait_for_job_at(&self.client, &self.base_url, id, Duration::from_secs(60)).await
    }

    /// Submits and waits: the finished job.
    pub async fn run_job(&self, path: &str, image: Vec<u8>, fields: &[(&str, &str)]) -> Value {
        let id = self.submit(path, image, fields).await;
        self.wait_for_job(&id).await
    }

    /// Sends a request with an optional JSON body; the status and the JSON answer (`null` if none).
    pub async fn json(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(&self.client, method, path, body).await
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        self.json(reqwest::Method::GET, path, None).await
    }

    /// Creates a collection (with the server's defaults); panics unless the api answers `201`.
    /// Recognize refuses a collection that does not exist, so a test that
    /// searches before it registers makes its collection first.
    pub async fn create_collection(&self, name: &str) {
        let body = serde_json::json!({ "name": name });
        let (status, answer) = self.json(reqwest::Method::POST, "/v1/collections", Some(body)).await;
        assert_eq!(status, 201, "creating collection {name}: {answer}");
    }

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
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE NOT l.granted AND l.relation = $1::regclass AND a.query LIKE $2",
            )
            .bind(table)
            .bind(pattern)
            .fetch_one(&self.db)
            .await
            .unwrap();
            if waiting > 0 {
                return;
            }
            assert!(Instant::now() < deadline, "nothing waited for a lock on {table}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A job's status and attempt count, read straight from the database
    /// (also while the api is down or stopped).
    pub async fn status_and_attempts(&self, id: &str) -> (String, i32) {
        let id: uuid::Uuid = id.parse().expect("a job id");
        sqlx::query_as("SELECT status, attempts FROM jobs WHERE id = $1").bind(id).fetch_one(&self.db).await.unwrap()
    }

    /// A connection to the Redis that carries this test's queue.
    pub async fn redis(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.redis_url.as_str())?.get_multiplexed_async_connection().await
    }

    /// Number of job messages this test's Redis queue holds: every message
    /// pushed, waiting or taken, until a worker's vacuum removes it.
    pub async fn queue_messages(&self) -> usize {
        let mut conn = self.redis().await.unwrap();
        redis::cmd("HLEN").arg(format!("{}:data", self.queue)).query_async(&mut conn).await.unwrap()
    }

    /// Number of Redis keys this test's queue holds per message (apalis's `:meta:*`).
    pub async fn message_keys(&self) -> usize {
        let mut conn = self.redis().await.unwrap();
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{}:meta:*", self.queue)).query_async(&mut conn).await.unwrap();
        keys.len()
    }

    /// The JSON payloads of every message this test's queue has carried.
    pub async fn queue_payloads(&self) -> Vec<Value> {
        let mut conn = self.redis().await.unwrap();
        let raw: Vec<Vec<u8>> =
            redis::cmd("HVALS").arg(format!("{}:data", self.queue)).query_async(&mut conn).await.unwrap();
        raw.iter().map(|bytes| serde_json::from_slice(bytes).expect("JSON message")).collect()
    }

    /// Stops the api and the worker, then drops the database and the queue's keys.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let tasks: Vec<_> = self.api.take().into_iter().chain(self.workers.drain(..)).map(Running::shut_down).collect();
        for task in tasks {
            task.await??;
        }
        self.db.close().await;
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database)))
            .await?;
        let mut conn = self.redis().await?;
        let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{}*", self.queue)).query_async(&mut conn).await?;
        if !keys.is_empty() {
            redis::cmd("DEL").arg(keys).query_async::<()>(&mut conn).await?;
        }
        Ok(())
    }
}

/// A fresh, migrated database of its own, for tests of the store alone
/// (no api, worker or models). [`TestDatabase::drop`] removes it.
pub struct TestDatabase {
    pub store: facerec_store::Store,
    pub db: sqlx::PgPool,
    pub database_url: String,
    admin_url: String,
    database: String,
}

impl TestDatabase {
    pub async fn create() -> anyhow::Result<Self> {
        let server_url = std::env::var("DATABASE_URL").context("DATABASE_URL must be set (make test sets it)")?;
        let (admin_url, database_url, database) = fresh_database_urls(&server_url);
        let mut admin = PgConnection::connect(&admin_url).await.context("connecting to PostgreSQL")?;
        drop_stale_test_databases(&mut admin).await?;
        admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{database}\""))).await?;
        let store = facerec_store::Store::connect(&database_url, 10).await?;
        store.migrate().await?;
        let db = sqlx::PgPool::connect(&database_url).await?;
        Ok(Self { store, db, database_url, admin_url, database })
    }

    /// Number of rows in `table` of this database.
    pub async fn count(&self, table: &str) -> i64 {
        count_rows(&self.db, table).await
    }

    pub async fn drop(self) -> anyhow::Result<()> {
        self.store.pool().close().await;
        self.db.close().await;
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database)))
            .await?;
        Ok(())
    }
}

async fn count_rows(db: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"))).fetch_one(db).await.unwrap()
}

async fn start_worker(settings: facerec_worker::Settings) -> anyhow::Result<Running> {
    let worker = facerec_worker::Worker::build(settings).await?;
    let (stop, rx) = oneshot::channel();
    Ok(Running { stop, task: tokio::spawn(worker.run_until(rx.map(|_| ()))) })
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

/// A test photo fetched by `scripts/fetch_assets.py photos` (never committed).
/// A multipart form with `image` (as a file part, if any) and text fields.
pub fn form(image: Option<Vec<u8>>, fields: &[(&str, &str)]) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new();
    if let Some(bytes) = image {
        form = form.part("image", reqwest::multipart::Part::bytes(bytes).file_name("upload"));
    }
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    form
}

/// Polls `GET {base_url}/v1/jobs/{id}` until the job ends (succeeded, failed
/// or canceled), at most `timeout`: its final record. For apps and binaries alike.
pub async fn wait_for_job_at(client: &reqwest::Client, base_url: &str, id: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let response = client.get(format!("{base_url}/v1/jobs/{id}")).send().await.expect("the api answers");
        let status = response.status();
        let job: Value = response.json().await.expect("a JSON job record");
        assert_eq!(status, 200, "GET job {id}: {job}");
        if matches!(job["status"].as_str(), Some("succeeded" | "failed" | "canceled")) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} not finished after {timeout:?}: {job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Checks every 100 ms until `check` holds; panics after `timeout`, saying
/// `describe()` (evaluated then, so it can show a process's output so far).
pub async fn wait_until<F: std::future::Future<Output = bool>>(
    timeout: Duration,
    describe: impl Fn() -> String,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {}", describe());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `target/<profile>/<name>`: a binary of the workspace, beside this test
/// executable (`make test` builds them before the tests).
pub fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>").join(name)
}

pub fn photo(name: &str) -> Vec<u8> {
    let dir = std::env::var("FACEREC_PHOTOS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos"));
    let path = dir.join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run `make test` to fetch the test photos", path.display()))
}

/// Percent-encodes `s` for one path segment: everything but unreserved ASCII,
/// so `/`, spaces and emoji travel inside the segment.
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Encodes an image as JPEG (quality 92).
pub fn jpeg(image: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92).encode_image(image).expect("encode JPEG");
    out.into_inner()
}

/// Two photos side by side, scaled to the same height: a photo with two people.
pub fn side_by_side(left: &[u8], right: &[u8]) -> anyhow::Result<Vec<u8>> {
    let (l, r) = (image::load_from_memory(left)?.to_rgb8(), image::load_from_memory(right)?.to_rgb8());
    let height = l.height().min(r.height());
    let scale = |img: &image::RgbImage| {
        let w = (img.width() as u64 * height as u64 / img.height() as u64) as u32;
        image::imageops::resize(img, w, height, image::imageops::FilterType::Triangle)
    };
    let (l, r) = (scale(&l), scale(&r));
    let mut out = image::RgbImage::new(l.width() + r.width(), height);
    image::imageops::replace(&mut out, &l, 0, 0);
    image::imageops::replace(&mut out, &r, l.width() as i64, 0);
    if out.width() == 0 {
        bail!("empty composition");
    }
    Ok(jpeg(&out))
}

/// `n` different JPEGs of the same photo (mirrored or not, each a little
/// brighter): distinct uploads of one face, for loading many images.
pub fn variants(photo: &[u8], n: usize) -> Vec<Vec<u8>> {
    let base = image::load_from_memory(photo).expect("a test photo decodes").to_rgb8();
    (0..n)
        .map(|i| {
            let mut img = if i % 2 == 1 { image::imageops::flip_horizontal(&base) } else { base.clone() };
            let lift = (i / 2) as u8;
            img.pixels_mut().for_each(|p| p.0.iter_mut().for_each(|c| *c = c.saturating_add(lift)));
            jpeg(&img)
        })
        .collect()
}

/// A synthetic photo with no face: smooth gradients and a few shapes.
pub fn faceless_image() -> Vec<u8> {
    let img = image::RgbImage::from_fn(640, 480, |x, y| {
        let in_box = (100..250).contains(&x) && (120..300).contains(&y);
        if in_box { image::Rgb([30, 90, 200]) } else { image::Rgb([(x / 3) as u8, (y / 2) as u8, 128]) }
    });
    jpeg(&img)
}
