//! The HTTP contract around jobs: ids, polling, refusals, health and errors.

use facerec_testkit::serde_json::Value;
use facerec_testkit::{TestApp, faceless_image, wait_until};

async fn error_of(resp: facerec_testkit::reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("error bodies are JSON");
    let code = body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error.code in {body}")).to_owned();
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    (status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_ids_are_polled_and_bad_ids_get_404_or_400() {
    let app = TestApp::spawn().await.unwrap();
    app.create_collection("default").await;
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
async fn health_request_ids_and_json_errors_for_unknown_routes() {
    let app = TestApp::api_only().await.unwrap();
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

    app.create_collection("default").await;
    let resp =
        app.post_form_with_headers("/v1/recognize", Some(faceless_image()), &[], &[("x-request-id", "req-123")]).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["x-request-id"], "req-123");
    let body: Value = resp.json().await.unwrap();
    let id = body["job_id"].as_str().unwrap();
    assert_eq!(app.job_column(id, "request_id").await.as_deref(), Some("req-123"));
    app.stop().await.unwrap();
}

/// Issue 29, item 13 and `GET /`: what a browser may do with each answer,
/// which client request ids are kept, and a landing page instead of a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carry_security_headers_and_only_plain_request_ids_are_kept() {
    let app = TestApp::api_only().await.unwrap();
    let get = |path: &str, request_id: Option<&str>| {
        let mut request = app.client.get(app.url(path));
        if let Some(id) = request_id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    let header = |resp: &facerec_testkit::reqwest::Response, name: &str| {
        resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
    };

    // `/` links the docs, the live page and the OpenAPI document.
    let landing = get("/", None).await.unwrap();
    assert_eq!(landing.status(), 200);
    assert!(header(&landing, "content-type").starts_with("text/html"));
    let page = landing.text().await.unwrap();
    for link in ["href=\"/docs/\"", "href=\"/live\"", "href=\"/openapi.json\""] {
        assert!(page.contains(link), "{link} missing from {page}");
    }

    // Every answer: nosniff, no framing, a policy; JSON and errors load nothing.
    for (path, status) in [("/", 200), ("/healthz", 200), ("/v1/jobs", 200), ("/openapi.json", 200), ("/nope", 404)] {
        let resp = get(path, None).await.unwrap();
        assert_eq!(resp.status(), status, "{path}");
        assert_eq!(header(&resp, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&resp, "x-frame-options"), "DENY", "{path}");
        assert!(header(&resp, "content-security-policy").starts_with("default-src 'none'"), "{path}");
    }
    // The docs page runs its own vendored scripts and nothing else; the live page keeps its own policy.
    for path in ["/docs/", "/docs/swagger-initializer.js"] {
        let resp = get(path, None).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let policy = header(&resp, "content-security-policy");
        assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(!policy.contains("unsafe-eval") && !policy.contains("http"), "{policy}");
        assert_eq!(header(&resp, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&resp, "x-frame-options"), "DENY", "{path}");
    }
    let live = get("/live", None).await.unwrap();
    assert!(header(&live, "content-security-policy").contains("media-src"), "the live page's own policy");
    assert_eq!(header(&live, "x-content-type-options"), "nosniff");

    // A request id of 1–64 plain characters is kept; anything else is replaced by a generated UUID.
    let longest = "a".repeat(64);
    for kept in ["trace-me-42", "4bf92f3577b34da6a3ce929d0e0e4736", "a.b_c:d-e", longest.as_str()] {
        assert_eq!(header(&get("/healthz", Some(kept)).await.unwrap(), "x-request-id"), kept);
    }
    let (too_long, huge) = ("a".repeat(65), "x".repeat(4096));
    for refused in [too_long.as_str(), huge.as_str(), "two words", "<script>alert(1)</script>", "a/b", "a\"b"] {
        let resp = get("/nope", Some(refused)).await.unwrap();
        let echoed = header(&resp, "x-request-id");
        assert!(echoed.parse::<uuid::Uuid>().is_ok(), "{refused:?} answered with id {echoed:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["request_id"], echoed.as_str(), "the body names the generated id");
    }
    // Sent twice, it is replaced too; and a submission stores the id the client was given.
    let twice = app.client.get(app.url("/healthz")).header("x-request-id", "one").header("x-request-id", "two");
    let echoed = header(&twice.send().await.unwrap(), "x-request-id");
    assert!(echoed.parse::<uuid::Uuid>().is_ok(), "{echoed:?}");
    app.create_collection("default").await;
    let resp = app
        .post_form_with_headers("/v1/recognize", Some(faceless_image()), &[], &[("x-request-id", too_long.as_str())])
        .await;
    assert_eq!(resp.status(), 202);
    let given = header(&resp, "x-request-id");
    assert!(given.parse::<uuid::Uuid>().is_ok(), "{given:?}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(app.job_column(body["job_id"].as_str().unwrap(), "request_id").await, Some(given));
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
    let app = TestApp::api_only().await.unwrap();
    // A second api, on this test's database and a Redis of its own that we then stop.
    let mut redis = PrivateRedis::start();
    let mut settings = <facerec_api::Settings as clap::Parser>::parse_from(["facerec-api"]);
    settings.addr = "127.0.0.1:0".parse().unwrap();
    settings.database.url = app.database_url.clone().into();
    settings.queue.redis_url = redis.url().into();
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
    app.create_collection("default").await;
    for _ in 0..3 {
        let id = app.submit("/v1/recognize", faceless_image(), &[]).await;
        assert_eq!(app.wait_for_job(&id).await["status"], "succeeded");
    }
    let describe = || "finished messages to leave Redis".to_owned();
    wait_until(std::time::Duration::from_secs(20), describe, || async { app.message_keys().await == 0 }).await;
    // The jobs themselves stay in PostgreSQL.
    assert_eq!(app.count("jobs").await, 3);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_message_carries_the_clients_trace_to_the_worker() {
    // No worker: the messages stay in the queue to be read.
    let app = TestApp::api_only().await.unwrap();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let header = format!("00-{trace}-00f067aa0ba902b7-01");
    app.create_collection("default").await;
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

/// A misspelt query parameter is refused, naming it and the ones the route
/// takes, instead of answering as if it were absent (`stauts=failed` would
/// list every job; `treshold=0.9` would stream with the default threshold).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misspelt_query_parameters_are_refused_on_every_route_that_reads_a_query() {
    let app = TestApp::api_only().await.unwrap();
    app.create_collection("people").await;
    let job = "00000000-0000-7000-8000-000000000000";
    let batch = "00000000-0000-7000-8000-000000000001";
    for (path, known) in [
        ("/v1/jobs?stauts=failed", "status"),
        (&format!("/v1/jobs/{job}?wait=5000") as &str, "wait_ms"),
        ("/v1/batches?state=running", "status"),
        (&format!("/v1/batches/{batch}/items?stat=failed"), "status"),
        ("/v1/collections?limt=5", "limit"),
        ("/v1/collections/people/subjects?prefx=a", "prefix"),
        ("/v1/collections/people/faces?subjet=a", "subject"),
        ("/v1/audit?colection=people", "collection"),
        ("/v1/keys?curser=x", "cursor"),
    ] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("unknown_field")), "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        let misspelt = path.split('?').nth(1).unwrap().split('=').next().unwrap();
        assert!(message.contains(misspelt) && message.contains(known), "{path}: {message}");
    }
    // The same on the live stream, before any upgrade.
    let refused = app.live("collection=people&treshold=0.9", &[], &[]).await.err().unwrap().to_string();
    assert!(refused.contains("400") && refused.contains("unknown_field") && refused.contains("treshold"), "{refused}");
    // Spelt right, they work.
    assert_eq!(app.client.get(app.url("/v1/jobs?status=failed")).send().await.unwrap().status(), 200);
    app.live("collection=people&threshold=0.9", &[], &[]).await.unwrap();
    app.stop().await.unwrap();
}

/// The example of docs/development.md: an api test needs no worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_deployment_lists_no_collections() {
    let app = TestApp::api_only().await.unwrap();
    let (status, body) = app.get_json("/v1/collections").await;
    assert_eq!((status, body["collections"].as_array().map(Vec::len)), (200, Some(0)), "{body}");
    app.stop().await.unwrap();
}
