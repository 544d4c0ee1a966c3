//! Webhooks: signed deliveries of a job's outcome to its callback_url, retried
//! on failure with every attempt recorded, a batch's webhook state, and the
//! SSRF guard (literal addresses refused at submission, names refused on the
//! address they resolve to). Every delivery here goes to loopback: targets
//! that must be refused are never left to a worker that could reach them.

use std::io::{Cursor, Write};
use std::time::Duration;

use facerec_testkit::reqwest::Method;
use facerec_testkit::reqwest::multipart::{Form, Part};
use facerec_testkit::serde_json::{Value, json};
use facerec_testkit::{TestApp, WebhookReceiver as Receiver, photo, wait_until};

const SECRET: &str = "test-webhook-secret";

/// Polls the job until its webhook reaches a final state.
async fn settled_webhook(app: &TestApp, id: &str) -> Value {
    for _ in 0..200 {
        let (_, job) = app.get_job(id).await;
        if matches!(job["webhook"]["status"].as_str(), Some("delivered" | "failed")) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("webhook of {id} never settled: {:?}", app.get_job(id).await.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_is_posted_signed_to_its_callback_url() {
    let (receiver, url) = Receiver::start(0).await;
    let app = TestApp::spawn_with(&|_| {}, &|w| w.webhook_secret = Some(SECRET.into())).await.unwrap();
    let id = app.submit("/v1/register", photo("obama.jpg"), &[("subject", "obama"), ("callback_url", &url)]).await;
    let job = settled_webhook(&app, &id).await;
    assert_eq!(job["webhook"]["status"], "delivered", "{job}");
    assert_eq!(job["webhook"]["attempts"], 1);
    assert_eq!(job["webhook"]["last_status"], 204);
    assert_eq!(receiver.count(), 1, "delivered exactly once");
    let (headers, body) = receiver.seen.lock().unwrap()[0].clone();
    let sent: Value = serde_json::from_slice(&body).unwrap();
    // The same JSON as GET /v1/jobs/{id}, as it was when the job ended.
    for field in ["job_id", "kind", "status", "result", "error", "attempts", "created_at", "finished_at"] {
        assert_eq!(sent[field], job[field], "{field}");
    }
    assert_eq!(sent["status"], "succeeded");
    let timestamp: u64 = headers["x-facerec-timestamp"].to_str().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(now.abs_diff(timestamp) < 60, "timestamp {timestamp} is not now");
    let expected = facerec_worker::signature(SECRET, timestamp, &body);
    assert_eq!(headers["x-facerec-signature"].to_str().unwrap(), expected);
    assert_ne!(facerec_worker::signature("another secret", timestamp, &body), expected);
    assert_eq!(headers["x-facerec-delivery-attempt"], "1");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_are_retried_and_every_attempt_is_recorded() {
    let (receiver, url) = Receiver::start(2).await;
    let app = TestApp::spawn().await.unwrap();
    app.create_collection("default").await;
    let id = app.submit("/v1/recognize", photo("obama2.jpg"), &[("callback_url", &url)]).await;
    let job = settled_webhook(&app, &id).await;
    assert_eq!(job["webhook"]["status"], "delivered", "{job}");
    assert_eq!(job["webhook"]["attempts"], 3, "two 500s, then a 204: {job}");
    let attempts: Vec<String> = receiver
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(h, _)| h["x-facerec-delivery-attempt"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"], "redeliveries are numbered");
    let recorded: Vec<(i32, Option<i32>)> =
        sqlx::query_as("SELECT attempt, http_status FROM webhook_attempts WHERE job_id = $1::uuid ORDER BY attempt")
            .bind(&id)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(recorded, [(1, Some(500)), (2, Some(500)), (3, Some(204))]);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_give_up_after_max_attempts_and_private_targets_are_refused() {
    let (receiver, url) = Receiver::start(usize::MAX).await;
    let app = TestApp::spawn_with(&|_| {}, &|w| w.webhook_max_attempts = 2).await.unwrap();
    let id = app.submit("/v1/embed", photo("obama.jpg"), &[("callback_url", &url)]).await;
    let job = settled_webhook(&app, &id).await;
    assert_eq!(job["webhook"]["status"], "failed", "{job}");
    assert_eq!(job["webhook"]["attempts"], 2);
    assert!(job["webhook"]["last_error"].as_str().unwrap().contains("500"), "{job}");
    assert_eq!(receiver.count(), 2);
    app.stop().await.unwrap();

    // Without FACEREC_WEBHOOK_ALLOW_PRIVATE, a name resolving to loopback (like
    // any address that is not public) is refused before connecting, for a job
    // and for a batch; the tenant is not told what our DNS answered.
    let (receiver, url) = Receiver::start(0).await;
    let url = url.replace("127.0.0.1", "localhost");
    let app = TestApp::spawn_with(&|_| {}, &|w| w.webhook_allow_private = false).await.unwrap();
    let id = app.submit("/v1/embed", photo("obama.jpg"), &[("callback_url", &url)]).await;
    let job = settled_webhook(&app, &id).await;
    assert_eq!(job["webhook"]["status"], "failed", "{job}");
    assert_eq!(job["webhook"]["attempts"], 1, "a refused target is not retried");
    assert_eq!(job["webhook"]["last_error"], "refused: not a public address", "{job}");
    let batch = post_batch(&app, &url).await;
    let batch = settled_batch_webhook(&app, &batch).await;
    assert_eq!(batch["webhook"]["status"], "failed", "{batch}");
    assert_eq!(batch["webhook"]["attempts"], 1, "{batch}");
    assert_eq!(batch["webhook"]["last_error"], "refused: not a public address", "{batch}");
    assert_eq!(receiver.count(), 0, "nothing may reach a private address");
    app.stop().await.unwrap();
}

/// A zip whose one entry is not an image: a batch that ends at once, without inference.
fn skipped_only_zip() -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("someone/notes.txt", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(b"not an image").unwrap();
    zip.finish().unwrap().into_inner()
}

fn batch_form(callback_url: &str) -> Form {
    Form::new()
        .part("archive", Part::bytes(skipped_only_zip()).file_name("photos.zip"))
        .text("collection", "staff")
        .text("callback_url", callback_url.to_owned())
}

/// Posts a batch with this callback_url; its id.
async fn post_batch(app: &TestApp, callback_url: &str) -> String {
    let resp = app.client.post(app.url("/v1/batches")).multipart(batch_form(callback_url)).send().await.unwrap();
    assert_eq!(resp.status(), 202, "batch refused: {}", resp.text().await.unwrap_or_default());
    let body: Value = resp.json().await.unwrap();
    body["batch_id"].as_str().expect("batch_id in body").to_owned()
}

/// Polls `GET /v1/batches/{id}` until its webhook reaches a final state.
async fn settled_batch_webhook(app: &TestApp, id: &str) -> Value {
    let path = format!("/v1/batches/{id}");
    wait_until(
        Duration::from_secs(20),
        || format!("the webhook of batch {id} to settle"),
        || async { matches!(app.get_json(&path).await.1["webhook"]["status"].as_str(), Some("delivered" | "failed")) },
    )
    .await;
    app.get_json(&path).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_shows_its_webhook_and_an_undelivered_one_says_only_that() {
    let app = TestApp::spawn_with(&|_| {}, &|w| w.webhook_max_attempts = 1).await.unwrap();
    let (receiver, url) = Receiver::start(0).await;
    let id = post_batch(&app, &url).await;
    let batch = settled_batch_webhook(&app, &id).await;
    assert_eq!(batch["status"], "completed", "{batch}");
    assert_eq!(batch["webhook"], json!({"status": "delivered", "attempts": 1, "last_status": 204, "last_error": null}));
    assert_eq!(receiver.count(), 1);

    // Nothing listens on this loopback port: what failed stays in our log.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let id = app.submit("/v1/embed", photo("obama.jpg"), &[("callback_url", &nowhere)]).await;
    let job = settled_webhook(&app, &id).await;
    assert_eq!(job["webhook"]["status"], "failed", "{job}");
    assert_eq!(job["webhook"]["last_error"], "could not be delivered", "{job}");
    let recorded: Vec<Option<String>> =
        sqlx::query_scalar("SELECT error FROM webhook_attempts WHERE job_id = $1::uuid ORDER BY attempt")
            .bind(&id)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(recorded, [Some("could not be delivered".to_owned())]);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_url_naming_an_address_that_is_not_public_is_refused_at_submission() {
    // No worker: even if a submission got through, nothing would be delivered anywhere.
    let app = TestApp::api_only_with(&|a| a.webhook_allow_private = false).await.unwrap();
    let (status, _) = app.json(Method::POST, "/v1/collections", Some(json!({"name": "staff"}))).await;
    assert_eq!(status, 201);
    let refused = [
        "http://[::127.0.0.1]/x",
        "http://[64:ff9b::7f00:1]/",
        "http://[fec0::1]/",
        "http://240.0.0.1/",
        "http://198.18.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:10.0.0.1]/",
        "http://0x7f.1/",
        // Loopback too, where FACEREC_WEBHOOK_ALLOW_PRIVATE is not set.
        "http://127.0.0.1:9/hook",
        "http://[::1]:9/hook",
    ];
    for url in refused {
        let image = || Part::bytes(photo("obama.jpg")).file_name("a.jpg");
        let forms = [
            ("/v1/register", Form::new().part("image", image()).text("subject", "a")),
            ("/v1/recognize", Form::new().part("image", image()).text("collection", "staff")),
            ("/v1/embed", Form::new().part("image", image())),
            ("/v1/verify", Form::new().part("image", image()).part("image2", image())),
            ("/v1/batches", batch_form(url)),
        ];
        for (path, form) in forms {
            let form = if path == "/v1/batches" { form } else { form.text("callback_url", url) };
            let resp = app.client.post(app.url(path)).multipart(form).send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (400, Some("invalid_callback_url")),
                "{path} {url}: {body}"
            );
        }
    }
    assert_eq!(app.count("jobs").await, 0);
    assert_eq!(app.count("batches").await, 0);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_attempt_does_not_overwrite_a_later_one() {
    let app = TestApp::spawn().await.unwrap();
    app.create_collection("default").await;
    let id = app.run_job("/v1/recognize", photo("obama2.jpg"), &[]).await["job_id"].as_str().unwrap().to_owned();
    let job_id: uuid::Uuid = id.parse().unwrap();
    // As if attempt 1 had outlived its hold and attempt 2 had been taken since
    // (the worker's loop leaves it alone: it is not due for an hour).
    sqlx::query(
        "UPDATE jobs SET callback_url = 'http://127.0.0.1:9/hook', webhook_status = 'pending', \
         webhook_attempts = 2, webhook_next_at = now() + interval '1 hour' WHERE id = $1",
    )
    .bind(job_id)
    .execute(&app.db)
    .await
    .unwrap();
    let store = facerec_store::Store::from_pool(app.db.clone());
    let outcome = |delivered: bool| facerec_store::WebhookAttempt {
        http_status: Some(if delivered { 204 } else { 500 }),
        error: None,
        duration: Duration::from_millis(5),
        retry_after: (!delivered).then_some(Duration::from_secs(60)),
        delivered,
    };
    store.record_webhook_attempt(job_id, 2, &outcome(true)).await.unwrap();
    store.record_webhook_attempt(job_id, 1, &outcome(false)).await.unwrap();
    let (_, job) = app.get_job(&id).await;
    assert_eq!(job["webhook"]["status"], "delivered", "{job}");
    assert_eq!(job["webhook"]["attempts"], 2, "{job}");
    assert_eq!(job["webhook"]["last_status"], 204, "{job}");
    assert_eq!(app.count("webhook_attempts").await, 2, "both attempts are on record");
    app.stop().await.unwrap();
}
