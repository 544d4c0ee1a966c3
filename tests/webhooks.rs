//! Webhooks: signed deliveries of a job's outcome to its callback_url, retried
//! on failure with every attempt recorded, and the SSRF guard.

use std::time::Duration;

use facerec_e2e::serde_json::Value;
use facerec_e2e::{TestApp, WebhookReceiver as Receiver, photo};

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

    // Without FACEREC_WEBHOOK_ALLOW_PRIVATE, loopback (like private and metadata addresses) is refused.
    let (receiver, url) = Receiver::start(0).await;
    let app = TestApp::spawn_with(&|_| {}, &|w| w.webhook_allow_private = false).await.unwrap();
    let id = app.submit("/v1/embed", photo("obama.jpg"), &[("callback_url", &url)]).await;
    let job = settled_webhook(&app, &id).await;
    assert_eq!(job["webhook"]["status"], "failed", "{job}");
    assert_eq!(job["webhook"]["attempts"], 1, "a refused target is not retried");
    assert!(job["webhook"]["last_error"].as_str().unwrap().contains("private address"), "{job}");
    assert_eq!(receiver.count(), 0, "nothing may reach a private address");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_attempt_does_not_overwrite_a_later_one() {
    let app = TestApp::spawn().await.unwrap();
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
