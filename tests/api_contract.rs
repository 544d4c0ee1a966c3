//! The HTTP contract around jobs: ids, polling, refusals, health and errors.

use facerec_e2e::serde_json::Value;
use facerec_e2e::{TestApp, faceless_image, photo};

async fn error_of(resp: facerec_e2e::reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("error bodies are JSON");
    let code = body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error.code in {body}")).to_owned();
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    (status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_ids_are_polled_and_bad_ids_get_404_or_400() {
    let app = TestApp::spawn().await.unwrap();
    let id = app.submit("/v1/recognize", faceless_image(), &[]).await;
    let (status, job) = app.get_job(&id).await;
    assert_eq!(status, 200);
    assert_eq!(job["job_id"], id.as_str());
    assert_eq!(job["kind"], "recognize");
    assert!(["queued", "processing", "succeeded"].contains(&job["status"].as_str().unwrap()), "{job}");
    let done = app.wait_for_job(&id).await;
    assert_eq!(done["status"], "succeeded");
    for field in ["created_at", "started_at", "finished_at"] {
        assert!(done[field].is_string(), "{field} missing: {done}");
    }
    assert!(done["created_at"].as_str() <= done["started_at"].as_str());
    assert!(done["started_at"].as_str() <= done["finished_at"].as_str());

    let unknown = app.client.get(app.url("/v1/jobs/00000000-0000-7000-8000-000000000000")).send().await.unwrap();
    assert_eq!(error_of(unknown).await, (404, "job_not_found".into()));
    let malformed = app.client.get(app.url("/v1/jobs/not-a-uuid")).send().await.unwrap();
    assert_eq!(error_of(malformed).await, (400, "invalid_job_id".into()));
    app.stop().await.unwrap();
}

/// A request that must be refused with `status` and error `code`.
struct BadUpload<'a> {
    path: &'a str,
    image: Option<Vec<u8>>,
    fields: Vec<(&'a str, &'a str)>,
    status: u16,
    code: &'a str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plainly_wrong_uploads_are_refused_at_once_and_never_queued() {
    let app = TestApp::spawn_with(&|api| api.max_upload_bytes = 200_000, &|_| {}).await.unwrap();
    let face = photo("obama2.jpg"); // 184 KB, under the limit
    let long_subject = "x".repeat(129);
    let cases: Vec<BadUpload> = vec![
        BadUpload {
            path: "/v1/register",
            image: None,
            fields: vec![("subject", "a")],
            status: 400,
            code: "missing_image",
        },
        BadUpload {
            path: "/v1/register",
            image: Some(face.clone()),
            fields: vec![],
            status: 400,
            code: "missing_subject",
        },
        BadUpload {
            path: "/v1/register",
            image: Some(face.clone()),
            fields: vec![("subject", "")],
            status: 400,
            code: "invalid_subject",
        },
        BadUpload {
            path: "/v1/register",
            image: Some(face.clone()),
            fields: vec![("subject", long_subject.as_str())],
            status: 400,
            code: "invalid_subject",
        },
        BadUpload {
            path: "/v1/register",
            image: Some(face.clone()),
            fields: vec![("subject", "a"), ("collection", "no spaces")],
            status: 400,
            code: "invalid_collection",
        },
        BadUpload {
            path: "/v1/register",
            image: Some(face.clone()),
            fields: vec![("subject", "a"), ("callback_url", "ftp://x")],
            status: 400,
            code: "invalid_callback_url",
        },
        BadUpload {
            path: "/v1/register",
            image: Some(b"GIF89a not supported".to_vec()),
            fields: vec![("subject", "a")],
            status: 415,
            code: "unsupported_media_type",
        },
        BadUpload {
            path: "/v1/register",
            image: Some(photo("obama.jpg")),
            fields: vec![("subject", "a")],
            status: 413,
            code: "payload_too_large",
        },
        BadUpload {
            path: "/v1/register",
            image: Some(face[..20].to_vec()),
            fields: vec![("subject", "a")],
            status: 422,
            code: "corrupt_image",
        },
        BadUpload {
            path: "/v1/recognize",
            image: Some(face.clone()),
            fields: vec![("top_k", "0")],
            status: 400,
            code: "invalid_top_k",
        },
        BadUpload {
            path: "/v1/recognize",
            image: Some(face.clone()),
            fields: vec![("top_k", "many")],
            status: 400,
            code: "invalid_top_k",
        },
        BadUpload {
            path: "/v1/recognize",
            image: Some(face.clone()),
            fields: vec![("threshold", "1.5")],
            status: 400,
            code: "invalid_threshold",
        },
    ];
    for case in cases {
        let resp = app.post_form(case.path, case.image, &case.fields).await;
        assert_eq!(error_of(resp).await, (case.status, case.code.to_owned()), "{} {:?}", case.path, case.fields);
    }
    let not_multipart = app.client.post(app.url("/v1/register")).body("hello").send().await.unwrap();
    assert_eq!(error_of(not_multipart).await, (400, "invalid_multipart".into()));

    assert_eq!(app.count("jobs").await, 0, "a refused upload must not create a job");
    assert_eq!(app.count("job_inputs").await, 0);
    assert_eq!(app.queued_messages().await, 0, "a refused upload must not be queued");
    // The limit is not a fixed cap: an upload under it is accepted.
    let id = app.submit("/v1/register", face, &[("subject", "a"), ("callback_url", "https://example.com/hook")]).await;
    assert_eq!(app.wait_for_job(&id).await["status"], "succeeded");
    assert_eq!(app.job_column(&id, "callback_url").await.as_deref(), Some("https://example.com/hook"));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_request_ids_and_json_errors_for_unknown_routes() {
    let app = TestApp::spawn().await.unwrap();
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");

    let resp = app.client.get(app.url("/nope")).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-me-42");
    assert_eq!(error_of(resp).await, (404, "not_found".into()));
    let resp = app.client.delete(app.url("/v1/register")).send().await.unwrap();
    assert!(resp.headers().contains_key("x-request-id"), "a request id is generated when absent");
    assert_eq!(error_of(resp).await, (405, "method_not_allowed".into()));

    let resp =
        app.post_form_with_headers("/v1/recognize", Some(faceless_image()), &[], &[("x-request-id", "req-123")]).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["x-request-id"], "req-123");
    let body: Value = resp.json().await.unwrap();
    let id = body["job_id"].as_str().unwrap();
    assert_eq!(app.job_column(id, "request_id").await.as_deref(), Some("req-123"));
    app.stop().await.unwrap();
}

/// A private redis-server on a unix socket (no port to race for), killed when dropped.
struct PrivateRedis {
    child: std::process::Child,
    socket: std::path::PathBuf,
}

impl PrivateRedis {
    fn start() -> Self {
        let socket = std::env::temp_dir().join(format!("facerec-test-{}.sock", uuid::Uuid::new_v4().simple()));
        let child = std::process::Command::new("redis-server")
            .args(["--port", "0", "--unixsocket", socket.to_str().unwrap(), "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed by make setup");
        Self { child, socket }
    }

    fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_when_redis_goes_away() {
    let app = TestApp::spawn().await.unwrap();
    // A second api, on this test's database and a Redis of its own that we then stop.
    let mut redis = PrivateRedis::start();
    let mut settings = <facerec_api::Settings as clap::Parser>::parse_from(["facerec-api"]);
    settings.addr = "127.0.0.1:0".parse().unwrap();
    settings.database_url = app.database_url.clone();
    settings.redis_url = redis.url();
    let mut api = None;
    for _ in 0..100 {
        match facerec_api::Api::build(settings.clone()).await {
            Ok(built) => {
                api = Some(built);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    let api = api.expect("api starts once its Redis is up");
    let url = format!("http://{}/readyz", api.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api.run_until(async move {
        let _ = stopped.await;
    }));
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200);
    redis.kill();
    let resp = app.client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_ready", "{body}");
    assert_eq!(body["checks"]["redis"], "unavailable", "{body}");
    assert_eq!(body["checks"]["postgres"], "ok", "{body}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_remove_finished_messages_from_redis() {
    let app = TestApp::spawn_with(&|_| {}, &|worker| {
        worker.vacuum_secs = 1;
        worker.queue_retention_secs = 0;
    })
    .await
    .unwrap();
    for _ in 0..3 {
        let id = app.submit("/v1/recognize", faceless_image(), &[]).await;
        assert_eq!(app.wait_for_job(&id).await["status"], "succeeded");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.message_keys().await > 0 {
        assert!(std::time::Instant::now() < deadline, "finished messages still in Redis after 20 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The jobs themselves stay in PostgreSQL.
    assert_eq!(app.count("jobs").await, 3);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_message_carries_the_clients_trace_to_the_worker() {
    let app = TestApp::spawn().await.unwrap();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let header = format!("00-{trace}-00f067aa0ba902b7-01");
    let resp =
        app.post_form_with_headers("/v1/recognize", Some(faceless_image()), &[], &[("traceparent", &header)]).await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let messages = app.queue_payloads().await;
    let message = messages.iter().find(|m| m["job_id"] == body["job_id"]).expect("the job's message is in Redis");
    assert_eq!(message["version"], 1);
    let carried = message["traceparent"].as_str().expect("a traceparent in the message");
    assert!(carried.starts_with(&format!("00-{trace}-")), "{carried}");
    // Without a client trace the api starts its own, and the message still carries one.
    let id = app.submit("/v1/recognize", faceless_image(), &[]).await;
    let messages = app.queue_payloads().await;
    let own = messages.iter().find(|m| m["job_id"] == id.as_str()).unwrap();
    assert!(own["traceparent"].as_str().is_some_and(|t| !t.contains(trace)), "{own}");
    app.stop().await.unwrap();
}
