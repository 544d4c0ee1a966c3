//! Jobs are never lost: PostgreSQL is the truth and Redis is disposable. Here
//! the worker listens on a queue of its own, so every message the api sends is
//! lost, as after a Redis flush; the reconciler must find the jobs and re-send
//! them. Also: a dead worker's expired lease, job retention, and an idle
//! worker woken by a push.

use std::time::Duration;

use facerec_queue::JobQueue;
use facerec_testkit::{TestApp, photo, wait_until};

const WORKER_QUEUE_PREFIX: &str = "facerec-test-recovery";

async fn app(worker_queue: &str) -> TestApp {
    let queue = worker_queue.to_owned();
    TestApp::spawn_with(&|_| {}, &move |w| {
        w.queue.name = queue.clone();
        w.reconcile_secs = 1;
        w.requeue_after_secs = 1;
    })
    .await
    .unwrap()
}

/// Removes the Redis keys of a queue of the test's own.
async fn drop_queue(redis_url: &str, queue: &str) {
    JobQueue::connect(redis_url, queue).await.unwrap().purge().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_whose_message_was_lost_are_re_enqueued_and_finish() {
    let queue = format!("{WORKER_QUEUE_PREFIX}-{}", uuid::Uuid::new_v4().simple());
    let app = app(&queue).await;
    let register = app.submit("/v1/register", photo("obama.jpg"), &[("subject", "obama")]).await;
    let recognize = app.submit("/v1/recognize", photo("obama2.jpg"), &[]).await;
    for id in [&register, &recognize] {
        let job = app.wait_for_job(id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["attempts"], 1, "re-sent, not retried: {job}");
    }
    assert_eq!(app.count("faces").await, 1);
    drop_queue(&app.redis_url, &queue).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_job_is_taken_over_when_its_lease_expires_and_not_before() {
    let queue = format!("{WORKER_QUEUE_PREFIX}-{}", uuid::Uuid::new_v4().simple());
    let app = app(&queue).await;
    let dead = app.submit("/v1/register", photo("obama.jpg"), &[("subject", "obama")]).await;
    let alive = app.submit("/v1/register", photo("biden.jpg"), &[("subject", "biden")]).await;
    // As if two workers had claimed them: one died (lease ran out), one still works (lease holds).
    for (id, lease) in [(&dead, "-1 second"), (&alive, "1 hour")] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'processing', attempts = 1, started_at = now(), \
             claim_token = gen_random_uuid(), lease_expires_at = now() + interval '{lease}' WHERE id = '{id}'"
        )))
        .execute(&app.db)
        .await
        .unwrap();
    }
    let job = app.wait_for_job(&dead).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2, "the second attempt, by another worker: {job}");
    // Proving that the live lease is NOT taken over, for a while, is the point.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, held) = app.get_job(&alive).await;
    assert_eq!(held["status"], "processing", "a live lease must be respected: {held}");
    assert_eq!(app.count("faces").await, 1);
    drop_queue(&app.redis_url, &queue).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_past_retention_are_deleted_but_their_faces_stay() {
    let queue = format!("{WORKER_QUEUE_PREFIX}-{}", uuid::Uuid::new_v4().simple());
    let app = app(&queue).await;
    let old = app.submit("/v1/register", photo("obama.jpg"), &[("subject", "obama")]).await;
    assert_eq!(app.wait_for_job(&old).await["status"], "succeeded");
    let recent = app.submit("/v1/recognize", photo("obama2.jpg"), &[]).await;
    assert_eq!(app.wait_for_job(&recent).await["status"], "succeeded");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET created_at = now() - interval '41 days', started_at = now() - interval '41 days', \
         finished_at = now() - interval '40 days' WHERE id = '{old}'"
    )))
    .execute(&app.db)
    .await
    .unwrap();
    let describe = || "a job finished 40 days ago to be deleted (30-day retention)".to_owned();
    wait_until(Duration::from_secs(10), describe, || async { app.get_job(&old).await.0 == 404 }).await;
    assert_eq!(app.get_job(&recent).await.0, 200, "a recent job stays");
    assert_eq!(app.count("faces").await, 1, "retention deletes jobs, not the gallery");
    drop_queue(&app.redis_url, &queue).await;
    app.stop().await.unwrap();
}

/// An idle worker is woken by the push itself (`JobQueue::enqueue` announces a
/// push into an empty queue; the worker listens), not by its tick: here it would look once a minute,
/// and its first heartbeat after starting is 5 s away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_takes_a_pushed_job_at_once() {
    let app = TestApp::spawn_with(&|_| {}, &|w| w.poll_interval_ms = 60_000).await.unwrap();
    // Idle past its first look for work: being idle is the point.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..3 {
        let id = app.submit("/v1/embed", photo("obama.jpg"), &[]).await;
        let job = app.wait_for_job(&id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        let waited = job["durations"]["queued_ms"].as_i64().unwrap();
        assert!(waited < 1000, "queued for {waited} ms: the push did not wake the worker");
    }
    app.stop().await.unwrap();
}

/// A push is announced only while a consumer may be idle: when no more than
/// `ANNOUNCE_SLACK` due messages besides its own wait. In a steady ingestion
/// the queue never empties, and an announcement per push woke every worker
/// mid-inference for nothing. Here nothing consumes the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_into_a_waiting_queue_are_not_announced() {
    use facerec_core::{JobId, JobKind, JobRef};
    use facerec_queue::ANNOUNCE_SLACK;
    use futures::StreamExt;

    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
    let name = format!("{WORKER_QUEUE_PREFIX}-announce-{}", uuid::Uuid::new_v4().simple());
    let queue = JobQueue::connect(&redis_url, &name).await.unwrap();
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(format!("{name}:pushed")).await.unwrap();
    let job = || JobRef { job_id: JobId::new(), kind: JobKind::Embed, traceparent: None };

    let pushes = ANNOUNCE_SLACK + 4;
    for _ in 0..pushes {
        queue.enqueue(&[job()]).await.unwrap();
    }
    // Three messages at once onto the waiting ones: not announced either.
    queue.enqueue(&[job(), job(), job()]).await.unwrap();
    // Redis delivers a channel's messages in order: all announcements come
    // before this marker, however slow the machine.
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("PUBLISH").arg(format!("{name}:pushed")).arg("end").query_async(&mut conn).await.unwrap();
    let mut heard = 0;
    let mut messages = pubsub.on_message();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), messages.next()).await;
        let payload: String = next.expect("the marker never came").expect("pubsub closed").get_payload().unwrap();
        if payload == "end" {
            break;
        }
        heard += 1;
    }
    assert_eq!(heard, ANNOUNCE_SLACK + 1, "{pushes} single pushes and a push of 3 into a queue nobody empties");
    drop(messages);

    // Into an empty queue, a push of many is announced.
    let empty = format!("{name}-empty");
    let fresh = JobQueue::connect(&redis_url, &empty).await.unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(format!("{empty}:pushed")).await.unwrap();
    fresh.enqueue(&(0..2 * ANNOUNCE_SLACK).map(|_| job()).collect::<Vec<_>>()).await.unwrap();
    let mut messages = pubsub.on_message();
    let first = tokio::time::timeout(Duration::from_secs(2), messages.next()).await;
    assert!(first.is_ok_and(|m| m.is_some()), "a push into an empty queue was not announced");
    drop(messages);

    drop_queue(&redis_url, &name).await;
    drop_queue(&redis_url, &empty).await;
}
