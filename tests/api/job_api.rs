//! The job API around submissions: cancel, listing with filters and cursors,
//! durations, idempotency keys, back-pressure, stats, and waiting for a job to
//! end. No worker runs here (the api alone), so submitted jobs stay queued
//! for the whole test.

use std::time::{Duration, Instant};

use facerec_testkit::TestApp;
use facerec_testkit::reqwest::Response;
use facerec_testkit::serde_json::Value;
use image::RgbImage;

async fn app(max_queued: i64) -> TestApp {
    TestApp::api_only_with(&|api| api.max_queued_jobs = max_queued).await.unwrap()
}

fn png() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(RgbImage::from_pixel(32, 32, [9, 99, 199].into()))
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

async fn error_code(resp: Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_can_be_canceled_once_and_its_upload_is_deleted() {
    let app = app(100).await;
    app.create_collection("default").await;
    let id = app.submit("/v1/recognize", png(), &[]).await;
    let resp = app.client.post(app.url(&format!("/v1/jobs/{id}/cancel"))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let job: Value = resp.json().await.unwrap();
    assert_eq!(job["status"], "canceled", "{job}");
    assert!(job["finished_at"].is_string() && job["started_at"].is_null(), "{job}");
    assert!(job["durations"]["processing_ms"].is_null(), "{job}");
    assert_eq!(app.count("job_inputs").await, 0, "a canceled job's upload is deleted");
    let again = app.client.post(app.url(&format!("/v1/jobs/{id}/cancel"))).send().await.unwrap();
    assert_eq!(error_code(again).await, (409, "job_not_cancelable".into()));
    let unknown =
        app.client.post(app.url("/v1/jobs/01a1fd00-0000-7000-8000-000000000000/cancel")).send().await.unwrap();
    assert_eq!(error_code(unknown).await, (404, "job_not_found".into()));
    let bad = app.client.post(app.url("/v1/jobs/nope/cancel")).send().await.unwrap();
    assert_eq!(error_code(bad).await, (400, "invalid_job_id".into()));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_request_answers_the_moment_its_job_ends() {
    let app = app(100).await;
    app.create_collection("default").await;
    let id = app.submit("/v1/recognize", png(), &[]).await;
    // Nothing runs it: the wait runs out and shows the job as it is.
    let started = Instant::now();
    let (status, job) = app.get_json(&format!("/v1/jobs/{id}?wait_ms=300")).await;
    assert_eq!((status, job["status"].as_str()), (200, Some("queued")), "{job}");
    assert!(started.elapsed() >= Duration::from_millis(300), "answered after {:?}", started.elapsed());

    // Canceled while a request waits: the end is announced, so the answer comes
    // at once, not at the waiter's next read of the job (every second).
    let (client, url) = (app.client.clone(), app.url(&format!("/v1/jobs/{id}?wait_ms=20000")));
    let waiting = tokio::spawn(async move { client.get(url).send().await.unwrap().json::<Value>().await.unwrap() });
    // Time for the request to start waiting; nothing shows when it has. One that
    // came late would find the job canceled and answer at once: never a failure.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let canceled_at = Instant::now();
    let resp = app.client.post(app.url(&format!("/v1/jobs/{id}/cancel"))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let job = waiting.await.unwrap();
    let after = canceled_at.elapsed();
    assert_eq!(job["status"], "canceled", "{job}");
    assert!(after < Duration::from_millis(600), "answered {after:?} after the cancel: the job's end was not announced");

    // An ended job is answered at once, whatever the wait.
    let started = Instant::now();
    let (status, job) = app.get_json(&format!("/v1/jobs/{id}?wait_ms=20000")).await;
    assert_eq!((status, job["status"].as_str()), (200, Some("canceled")));
    assert!(started.elapsed() < Duration::from_secs(1));

    for bad in ["-1", "20001", "soon", "1.5", ""] {
        let resp = app.client.get(app.url(&format!("/v1/jobs/{id}?wait_ms={bad}"))).send().await.unwrap();
        assert_eq!(error_code(resp).await, (400, "invalid_wait".into()), "wait_ms={bad}");
    }
    app.stop().await.unwrap();
}

async fn list(app: &TestApp, query: &str) -> Value {
    let resp = app.client.get(app.url(&format!("/v1/jobs?{query}"))).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{query}");
    resp.json().await.unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["jobs"].as_array().unwrap().iter().map(|j| j["job_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_listed_newest_first_with_filters_and_cursors() {
    let app = app(100).await;
    // Recognize searches an existing collection only; "north" comes with its register.
    app.create_collection("south").await;
    let mut submitted = Vec::new();
    for (path, fields) in [
        ("/v1/register", vec![("subject", "a"), ("collection", "north")]),
        ("/v1/recognize", vec![("collection", "north")]),
        ("/v1/recognize", vec![("collection", "south")]),
        ("/v1/embed", vec![]),
        ("/v1/register", vec![("subject", "b"), ("collection", "south")]),
    ] {
        submitted.push(app.submit(path, png(), &fields).await);
    }
    let canceled = &submitted[1];
    app.client.post(app.url(&format!("/v1/jobs/{canceled}/cancel"))).send().await.unwrap();

    let newest_first: Vec<String> = submitted.iter().rev().cloned().collect();
    let all = list(&app, "").await;
    assert_eq!(ids(&all), newest_first);
    assert!(all["next_cursor"].is_null());
    assert!(all["jobs"][0]["durations"]["queued_ms"].is_number(), "{all}");

    assert_eq!(ids(&list(&app, "kind=register").await), [submitted[4].clone(), submitted[0].clone()]);
    assert_eq!(ids(&list(&app, "collection=north").await), [submitted[1].clone(), submitted[0].clone()]);
    // A misspelt collection is not "no jobs there".
    let resp = app.client.get(app.url("/v1/jobs?collection=nroth")).send().await.unwrap();
    assert_eq!(error_code(resp).await, (404, "collection_not_found".to_owned()));
    assert_eq!(ids(&list(&app, "status=canceled").await), std::slice::from_ref(canceled));
    assert_eq!(ids(&list(&app, "status=queued&kind=recognize").await), [submitted[2].clone()]);
    assert_eq!(ids(&list(&app, "created_before=2000-01-01T00:00:00Z").await), Vec::<String>::new());
    assert_eq!(ids(&list(&app, "created_after=2000-01-01T00:00:00Z").await).len(), 5);

    // Pages of two: every job exactly once, in order.
    let (mut seen, mut cursor) = (Vec::new(), String::new());
    loop {
        let page = list(&app, &format!("limit=2{cursor}")).await;
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, newest_first);

    for (query, code) in [
        ("status=lost", "invalid_status"),
        ("kind=delete", "invalid_kind"),
        ("collection=a%20b", "invalid_collection"),
        ("created_after=yesterday", "invalid_time"),
        ("limit=0", "invalid_limit"),
        ("limit=101", "invalid_limit"),
        ("cursor=abc", "invalid_cursor"),
    ] {
        let resp = app.client.get(app.url(&format!("/v1/jobs?{query}"))).send().await.unwrap();
        assert_eq!(error_code(resp).await, (400, code.into()), "{query}");
    }
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_idempotency_key_returns_the_original_job() {
    let app = app(100).await;
    let post = |key: &str| {
        let form = facerec_testkit::reqwest::multipart::Form::new()
            .part("image", facerec_testkit::reqwest::multipart::Part::bytes(png()).file_name("x.png"))
            .text("subject", "ada");
        app.client.post(app.url("/v1/register")).header("idempotency-key", key).multipart(form).send()
    };
    let first = post("order-42").await.unwrap();
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = post("order-42").await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["job_id"], first["job_id"]);
    assert_eq!(app.count("jobs").await, 1, "a repeat must not create a second job");
    assert_eq!(app.queue_messages().await, 1, "nor enqueue it twice");
    // Another key is another job; the same key on another kind of job is a conflict.
    assert_eq!(post("order-43").await.unwrap().status(), 202);
    let recognize = app
        .client
        .post(app.url("/v1/recognize"))
        .header("idempotency-key", "order-42")
        .multipart(
            facerec_testkit::reqwest::multipart::Form::new()
                .part("image", facerec_testkit::reqwest::multipart::Part::bytes(png()).file_name("x.png")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(recognize).await, (409, "idempotency_key_reused".into()));
    for bad in ["has space", &"k".repeat(256)] {
        assert_eq!(error_code(post(bad).await.unwrap()).await, (400, "invalid_idempotency_key".into()), "{bad}");
    }
    assert_eq!(app.count("jobs").await, 2);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_with_retry_after_and_stats_show_the_depth() {
    let app = app(2).await;
    let first = app.submit("/v1/embed", png(), &[]).await;
    app.submit("/v1/embed", png(), &[]).await;
    let resp = app.post_form("/v1/embed", Some(png()), &[]).await;
    assert_eq!(resp.headers()["retry-after"], "5");
    assert_eq!(error_code(resp).await, (429, "queue_full".into()));
    let stats: Value = app.client.get(app.url("/v1/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!((stats["queued"].as_i64(), stats["max_queued"].as_i64()), (Some(2), Some(2)), "{stats}");
    assert_eq!(app.count("jobs").await, 2, "a refused submission stores nothing");
    assert_eq!(app.queue_messages().await, 2, "and queues nothing");
    // Room again once a job leaves the queue.
    app.client.post(app.url(&format!("/v1/jobs/{first}/cancel"))).send().await.unwrap();
    app.submit("/v1/embed", png(), &[]).await;
    app.stop().await.unwrap();
}
