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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plainly_wrong_uploads_are_refused_at_once_and_never_queued() {
    let app = TestApp::spawn_with(&|api| api.max_upload_bytes = 200_000, &|_| {}).await.unwrap();
    let face = photo("obama2.jpg"); // 184 KB, under the limit
    let long_subject = "x".repeat(129);
    let cases: Vec<(&str, Option<Vec<u8>>, Vec<(&str, &str)>, u16, &str)> = vec![
        ("/v1/register", None, vec![("subject", "a")], 400, "missing_image"),
        ("/v1/register", Some(face.clone()), vec![], 400, "missing_subject"),
        ("/v1/register", Some(face.clone()), vec![("subject", "")], 400, "invalid_subject"),
        ("/v1/register", Some(face.clone()), vec![("subject", long_subject.as_str())], 400, "invalid_subject"),
        ("/v1/register", Some(face.clone()), vec![("subject", "a"), ("collection", "no spaces")], 400, "invalid_collection"),
        ("/v1/register", Some(face.clone()), vec![("subject", "a"), ("callback_url", "ftp://x")], 400, "invalid_callback_url"),
        ("/v1/register", Some(b"GIF89a not supported".to_vec()), vec![("subject", "a")], 415, "unsupported_media_type"),
        ("/v1/register", Some(photo("obama.jpg")), vec![("subject", "a")], 413, "payload_too_large"),
        ("/v1/register", Some(face[..20].to_vec()), vec![("subject", "a")], 422, "corrupt_image"),
        ("/v1/recognize", Some(face.clone()), vec![("top_k", "0")], 400, "invalid_top_k"),
        ("/v1/recognize", Some(face.clone()), vec![("top_k", "many")], 400, "invalid_top_k"),
        ("/v1/recognize", Some(face.clone()), vec![("threshold", "1.5")], 400, "invalid_threshold"),
    ];
    for (path, image, fields, status, code) in cases {
        let resp = app.post_form(path, image, &fields).await;
        assert_eq!(error_of(resp).await, (status, code.to_owned()), "{path} {fields:?}");
    }
    let not_multipart = app.client.post(app.url("/v1/register")).body("hello").send().await.unwrap();
    assert_eq!(error_of(not_multipart).await, (400, "invalid_multipart".into()));

    assert_eq!(app.count("jobs").await, 0, "a refused upload must not create a job");
    assert_eq!(app.count("job_inputs").await, 0);
    assert_eq!(app.queued_messages().await, 0, "a refused upload must not be queued");
    // The limit is not a fixed cap: an upload under it is accepted.
    let id = app.submit("/v1/register", face, &[("subject", "a"), ("callback_url", "https://example.com/hook")]).await;
    assert_eq!(app.wait_for_job(&id).await["status"], "succeeded");
    let stored: Option<String> = facerec_e2e_callback(&app, &id).await;
    assert_eq!(stored.as_deref(), Some("https://example.com/hook"));
    app.stop().await.unwrap();
}

async fn facerec_e2e_callback(app: &TestApp, id: &str) -> Option<String> {
    let id: uuid::Uuid = id.parse().unwrap();
    sqlx::query_scalar("SELECT callback_url FROM jobs WHERE id = $1").bind(id).fetch_one(&app.db).await.unwrap()
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

    let id = app.submit_with_request_id("req-123").await;
    let id: uuid::Uuid = id.parse().unwrap();
    let stored: Option<String> =
        sqlx::query_scalar("SELECT request_id FROM jobs WHERE id = $1").bind(id).fetch_one(&app.db).await.unwrap();
    assert_eq!(stored.as_deref(), Some("req-123"));
    app.stop().await.unwrap();
}

trait SubmitWithRequestId {
    async fn submit_with_request_id(&self, request_id: &str) -> String;
}

impl SubmitWithRequestId for TestApp {
    async fn submit_with_request_id(&self, request_id: &str) -> String {
        let form = facerec_e2e::reqwest::multipart::Form::new()
            .part("image", facerec_e2e::reqwest::multipart::Part::bytes(faceless_image()).file_name("x.jpg"));
        let resp = self.client.post(self.url("/v1/recognize")).header("x-request-id", request_id).multipart(form).send().await.unwrap();
        assert_eq!(resp.status(), 202);
        let body: Value = resp.json().await.unwrap();
        body["job_id"].as_str().unwrap().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_when_redis_goes_away() {
    let app = TestApp::spawn().await.unwrap();
    // A second api, on this test's database and a Redis of its own that we then stop.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut redis = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed by make setup");
    let mut settings = <facerec_api::Settings as clap::Parser>::parse_from(["facerec-api"]);
    settings.addr = "127.0.0.1:0".parse().unwrap();
    settings.database_url = app.database_url.clone();
    settings.redis_url = format!("redis://127.0.0.1:{port}/");
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
    redis.kill().unwrap();
    redis.wait().unwrap();
    let resp = app.client.get(&url).send().await.unwrap();
    let (status, code) = error_of_keep(resp).await;
    assert_eq!((status, code.as_str()), (503, "not_ready"));
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    app.stop().await.unwrap();
}

async fn error_of_keep(resp: facerec_e2e::reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["checks"]["redis"], "unavailable", "{body}");
    assert_eq!(body["checks"]["postgres"], "ok", "{body}");
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}
