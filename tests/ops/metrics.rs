//! Metrics as an operator sees them: a real Prometheus (Debian's package)
//! scrapes the api binary and two worker binaries, loads our alert rules, and
//! its query API shows every series of the issue, moving as jobs run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use facerec_testkit::process::{Process, free_port};
use facerec_testkit::{
    MASTER_KEY, TestApp, TestDatabase, WebhookReceiver, bearer, built_binary, faceless_image, form, photo,
    wait_for_job_at, wait_until,
};
use serde_json::Value;

/// The environment of a service binary run against `db` and `queue`.
fn service_env(db: &TestDatabase, queue: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db.database_url.clone()),
        ("FACEREC_QUEUE", queue.to_owned()),
        ("RUST_LOG", "info".to_owned()),
        ("FACEREC_WORKER_CONCURRENCY", "1".to_owned()),
        ("FACEREC_INTRA_THREADS", "1".to_owned()),
        ("FACEREC_POLL_INTERVAL_MS", "20".to_owned()),
        ("FACEREC_WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
        ("FACEREC_WEBHOOK_POLL_MS", "50".to_owned()),
    ]
}

/// The api and two workers, as separate processes.
struct Stack {
    /// Kept for its lifetime: dropping it stops the api.
    _api: Process,
    api_addr: String,
    /// The api's `/metrics` listener (`FACEREC_API_METRICS_ADDR`), as in docker-compose.yml.
    api_metrics_addr: String,
    workers: Vec<Process>,
    worker_addrs: Vec<String>,
    client: reqwest::Client,
}

impl Stack {
    async fn start(db: &TestDatabase, queue: &str) -> Self {
        let mut env = service_env(db, queue);
        env.push(("FACEREC_API_ADDR", "127.0.0.1:0".to_owned()));
        env.push(("FACEREC_API_METRICS_ADDR", "127.0.0.1:0".to_owned()));
        let api = Process::start(&built_binary("facerec-api"), &[], &env);
        let api_metrics_addr = api.address_after("api metrics listening", Duration::from_secs(60)).await;
        let api_addr = api.address_after("api listening", Duration::from_secs(60)).await;
        let mut env = service_env(db, queue);
        env.push(("FACEREC_WORKER_METRICS_ADDR", "127.0.0.1:0".to_owned()));
        let workers: Vec<_> = (0..2).map(|_| Process::start(&built_binary("facerec-worker"), &[], &env)).collect();
        let mut worker_addrs = Vec::new();
        for worker in &workers {
            worker_addrs.push(worker.address_after("metrics and probes listening", Duration::from_secs(60)).await);
        }
        let client = reqwest::Client::new();
        for addr in &worker_addrs {
            wait_until(
                Duration::from_secs(120),
                || format!("worker {addr} ready"),
                || async { client.get(format!("http://{addr}/readyz")).send().await.is_ok_and(|r| r.status() == 200) },
            )
            .await;
        }
        Self { _api: api, api_addr, api_metrics_addr, workers, worker_addrs, client }
    }

    /// Submits a job and waits for it to end; its final record.
    async fn run_job(&self, path: &str, image: Vec<u8>, fields: &[(&str, &str)]) -> Value {
        let response = self
            .client
            .post(format!("http://{}{path}", self.api_addr))
            .multipart(form(Some(image), fields))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{path}: {}", response.text().await.unwrap());
        let id = response.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_owned();
        wait_for_job_at(&self.client, &format!("http://{}", self.api_addr), &id, Duration::from_secs(60)).await
    }
}

/// A Prometheus server scraping the stack every second, with our alert rules loaded.
struct Prometheus {
    _process: Process,
    url: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(stack: &Stack) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yml");
        let workers: Vec<String> = stack.worker_addrs.iter().map(|a| format!("'{a}'")).collect();
        let config = format!(
            "global: {{ scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }}\n\
             rule_files: ['{}']\n\
             scrape_configs:\n\
             - job_name: facerec-api\n  static_configs: [{{ targets: ['{}'] }}]\n\
             - job_name: facerec-worker\n  static_configs: [{{ targets: [{}] }}]\n",
            rules.display(),
            stack.api_metrics_addr,
            workers.join(", ")
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let process = Process::start(
            std::path::Path::new("prometheus"),
            &[
                &format!("--config.file={}", dir.path().join("prometheus.yml").display()),
                &format!("--storage.tsdb.path={}", dir.path().join("data").display()),
                &format!("--web.listen-address=127.0.0.1:{port}"),
            ],
            &[],
        );
        let prometheus = Self {
            _process: process,
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            _dir: dir,
        };
        let ready = format!("{}/-/ready", prometheus.url);
        wait_until(
            Duration::from_secs(60),
            || "Prometheus ready".into(),
            || async { prometheus.client.get(&ready).send().await.is_ok_and(|r| r.status() == 200) },
        )
        .await;
        prometheus
    }

    /// The result vector of an instant query.
    async fn query(&self, expr: &str) -> Vec<Value> {
        let body: Value = self
            .client
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["status"], "success", "{expr}: {body}");
        body["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of a query that sums to one series; `None` while absent.
    async fn value(&self, expr: &str) -> Option<f64> {
        let result = self.query(expr).await;
        result.first().and_then(|s| s["value"][1].as_str()).and_then(|v| v.parse().ok())
    }

    /// Waits until `expr` has a value for which `ok` holds.
    async fn wait_for(&self, expr: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let value = self.value(expr).await;
            if let Some(v) = value.filter(|v| ok(*v)) {
                return v;
            }
            assert!(Instant::now() < deadline, "{expr} stayed at {value:?}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_api_and_two_workers_and_the_series_move_as_jobs_run() {
    facerec_telemetry::init_tracing("facerec-tests");
    let db = TestDatabase::create().await.unwrap();
    let queue = format!("facerec-test-{}", uuid::Uuid::new_v4().simple());
    let stack = Stack::start(&db, &queue).await;
    let prometheus = Prometheus::start(&stack).await;
    // With a metrics listener of its own, the api's public address does not serve them.
    let public = stack.client.get(format!("http://{}/metrics", stack.api_addr)).send().await.unwrap();
    assert_eq!(public.status(), 404);

    // Every process is scraped; both workers say they are ready; the rules loaded.
    prometheus.wait_for(r#"count(up{job=~"facerec-.*"} == 1)"#, |v| v == 3.0).await;
    prometheus.wait_for("sum(facerec_worker_ready)", |v| v == 2.0).await;
    prometheus.wait_for(r#"count(facerec_build_info{service=~"facerec-api|facerec-worker"})"#, |v| v == 3.0).await;
    let rules: Value =
        prometheus.client.get(format!("{}/api/v1/rules", prometheus.url)).send().await.unwrap().json().await.unwrap();
    let groups = rules["data"]["groups"].as_array().unwrap();
    assert!(!groups.is_empty() && groups.iter().all(|g| g["lastError"].as_str().unwrap_or("").is_empty()), "{rules}");
    // Counters an alert reads exist before anything happened.
    for name in ["facerec_reconciler_resends_total", "facerec_lease_takeovers_total"] {
        assert_eq!(prometheus.wait_for(&format!("sum({name})"), |_| true).await, 0.0, "{name}");
    }
    // The live series are there from the start, at 0: the api's frames by outcome, each worker's served frames.
    prometheus.wait_for("count(facerec_live_frames_total)", |v| v == 4.0).await;
    prometheus.wait_for("count(facerec_live_served_total)", |v| v == 6.0).await;
    prometheus.wait_for("sum(facerec_live_frames_total) + sum(facerec_live_served_total)", |v| v == 0.0).await;
    prometheus.wait_for(r#"count(facerec_queue_depth{job="facerec-api"})"#, |v| v == 3.0).await;

    // The queue depth rises while both workers are stopped, and falls once they run.
    for worker in &stack.workers {
        worker.signal("STOP");
    }
    let mut queued = Vec::new();
    for _ in 0..3 {
        let response = stack
            .client
            .post(format!("http://{}/v1/embed", stack.api_addr))
            .multipart(form(Some(photo("obama.jpg")), &[]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        queued.push(response);
    }
    prometheus.wait_for(r#"facerec_queue_depth{state="queued"}"#, |v| v >= 3.0).await;
    for worker in &stack.workers {
        worker.signal("CONT");
    }
    prometheus.wait_for(r#"facerec_queue_depth{state="queued"}"#, |v| v == 0.0).await;
    prometheus.wait_for(r#"sum(facerec_jobs_total{kind="embed",outcome="succeeded"})"#, |v| v >= 3.0).await;

    // Jobs of every kind of outcome, one with a webhook.
    let (receiver, hook) = WebhookReceiver::start(0).await;
    let registered = stack
        .run_job(
            "/v1/register",
            photo("obama.jpg"),
            &[("subject", "person-a"), ("collection", "ops"), ("callback_url", &hook)],
        )
        .await;
    assert_eq!(registered["status"], "succeeded", "{registered}");
    let recognized = stack.run_job("/v1/recognize", photo("obama2.jpg"), &[("collection", "ops")]).await;
    assert_eq!(recognized["status"], "succeeded", "{recognized}");
    let faceless =
        stack.run_job("/v1/register", faceless_image(), &[("subject", "nobody"), ("collection", "ops")]).await;
    assert_eq!(faceless["status"], "failed", "{faceless}");
    wait_until(Duration::from_secs(30), || "the webhook".into(), || async { receiver.count() >= 1 }).await;

    prometheus.wait_for(r#"sum(facerec_jobs_total{kind="register",outcome="succeeded"})"#, |v| v >= 1.0).await;
    prometheus.wait_for(r#"sum(facerec_jobs_total{kind="register",outcome="failed"})"#, |v| v >= 1.0).await;
    prometheus.wait_for(r#"sum(facerec_jobs_total{kind="recognize",outcome="succeeded"})"#, |v| v >= 1.0).await;
    prometheus.wait_for(r#"sum(facerec_jobs_submitted_total{kind="register"})"#, |v| v >= 2.0).await;
    prometheus.wait_for(r#"sum(facerec_job_duration_seconds_count)"#, |v| v >= 6.0).await;
    prometheus.wait_for(r#"sum(facerec_queue_wait_seconds_count)"#, |v| v >= 6.0).await;
    for stage in facerec_telemetry::Stage::ALL {
        let expr = format!(r#"sum(facerec_stage_duration_seconds_count{{stage="{}"}})"#, stage.as_str());
        prometheus.wait_for(&expr, |v| v >= 1.0).await;
    }
    prometheus.wait_for("sum(facerec_faces_per_image_sum)", |v| v >= 5.0).await;
    prometheus.wait_for("sum(facerec_embed_batch_size_count)", |v| v >= 5.0).await;
    prometheus.wait_for(r#"sum(facerec_webhook_deliveries_total{outcome="delivered"})"#, |v| v >= 1.0).await;
    prometheus.wait_for(r#"sum(facerec_http_requests_total{route="/v1/register",status="202"})"#, |v| v >= 2.0).await;
    prometheus.wait_for(r#"sum(facerec_http_requests_total{route="/v1/jobs/{id}",status="200"})"#, |v| v >= 3.0).await;
    prometheus
        .wait_for(r#"sum(facerec_http_request_duration_seconds_count{route="/v1/recognize"})"#, |v| v >= 1.0)
        .await;
    // The histograms answer the questions they are for.
    let p50 =
        r#"histogram_quantile(0.5, sum by (le) (rate(facerec_stage_duration_seconds_bucket{stage="detect"}[1m])))"#;
    prometheus.wait_for(p50, |v| v > 0.0 && v < 10.0).await;

    // Label values are bounded: no job id, face id or subject in any series.
    let series: Value = prometheus
        .client
        .get(format!("{}/api/v1/series", prometheus.url))
        .query(&[("match[]", r#"{__name__=~"facerec_.*"}"#)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let series = series["data"].as_array().unwrap();
    assert!(series.len() > 30, "{series:?}");
    let job_id = registered["job_id"].as_str().unwrap();
    let face_id = registered["result"]["face_id"].as_str().unwrap();
    for s in series {
        let text = s.to_string();
        for secret in [job_id, face_id, "person-a", "ops"] {
            assert!(!text.contains(&format!("\"{secret}\"")), "{secret} in {text}");
        }
        assert!(s.as_object().unwrap().len() <= 7, "too many labels: {text}");
    }
    drop(queued);
    drop(prometheus);
    drop(stack);
    db.drop().await.unwrap();
}

/// A job claimed while its holder's lease had run out (a worker killed
/// mid-job) is counted as a takeover, and runs to the end.
#[tokio::test]
async fn a_job_taken_from_an_expired_lease_is_counted_as_a_takeover() {
    // No worker until the job looks like a dead worker's.
    let mut app = TestApp::api_only().await.unwrap();
    let rendered = || facerec_telemetry::metrics::render(facerec_telemetry::metrics::prometheus("facerec-tests"));
    let takeovers = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("facerec_lease_takeovers_total "))
            .map_or(0.0, |v| v.trim().parse::<f64>().unwrap())
    };
    let before = takeovers(&rendered());
    let id = app.submit("/v1/embed", photo("obama.jpg"), &[]).await;
    // As a worker that claimed it and died would leave it.
    sqlx::query(
        "UPDATE jobs SET status = 'processing', attempts = 1, started_at = now(), claim_token = gen_random_uuid(), \
         lease_expires_at = now() - interval '1 second' WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(&app.db)
    .await
    .unwrap();
    app.start_worker(&|_| {}).await.unwrap();
    let job = app.wait_for_job(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    assert_eq!(takeovers(&rendered()), before + 1.0);
    app.stop().await.unwrap();
}

/// `/metrics` counts every tenant's traffic (issue 29, item 14): with a master
/// key, the api's address serves it only to the master key; on
/// `FACEREC_API_METRICS_ADDR` it is served without a key, and not on the api's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_master_key_unless_served_on_their_own_address() {
    let app = TestApp::api_only_keyed(&|_| {}).await.unwrap();
    let anonymous = reqwest::Client::new();
    let response = anonymous.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "missing_api_key");
    let tenant = app.create_key(&["*"], &["*"]).await;
    let response = tenant.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 403, "an API key, even with every action, is not the master key");
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("facerec_http_requests_total"));

    // A second api on the same database and queue, with a metrics listener of its own.
    let mut settings = <facerec_api::Settings as clap::Parser>::parse_from(["facerec-api"]);
    settings.addr = "127.0.0.1:0".parse().unwrap();
    settings.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    settings.master_key = Some(MASTER_KEY.to_owned().into());
    settings.database.url = app.database_url.clone().into();
    settings.queue.redis_url = app.redis_url.clone().into();
    settings.queue.name = app.queue.clone();
    let api = facerec_api::Api::build(settings).await.unwrap();
    let (public, own) = (api.local_addr(), api.metrics_addr().expect("a metrics listener"));
    assert!(own.ip().is_loopback() && own != public);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api.run_until(async move {
        let _ = stopped.await;
    }));
    let response = anonymous.get(format!("http://{own}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert!(response.text().await.unwrap().contains("facerec_http_requests_total"));
    let master = bearer(MASTER_KEY);
    let response = master.get(format!("http://{public}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 404, "not on the api's address, even for the master key");
    assert_eq!(master.get(format!("http://{public}/v1/stats")).send().await.unwrap().status(), 200);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    app.stop().await.unwrap();
}
