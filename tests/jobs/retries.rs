//! Retry classification. A transient failure (a database error, injected by a
//! trigger in this test's own database) sends the job back to `queued` with a
//! retry time after an exponential, jittered backoff, visible to clients; the
//! job succeeds once the fault is gone, or fails with its attempt count when it
//! persists. Bad input fails at once, without a retry.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use facerec_core::{JobKind, JobRef};
use facerec_queue::JobQueue;
use facerec_testkit::{TestApp, faceless_image, photo, serde_json::Value};

const MAX_ATTEMPTS: i32 = 3;
const BACKOFF_MS: u64 = 1_000;

async fn app() -> TestApp {
    let app = TestApp::spawn_with(&|_| {}, &|w| {
        w.max_attempts = MAX_ATTEMPTS;
        w.retry_backoff_ms = BACKOFF_MS;
    })
    .await
    .unwrap();
    // Inserting a subject whose name is listed in `test_faults` fails, as a
    // database error would; the test lists and unlists names.
    for statement in [
        "CREATE TABLE test_faults (name text PRIMARY KEY)",
        "CREATE FUNCTION test_fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF EXISTS (SELECT 1 FROM test_faults WHERE name = NEW.name) THEN \
                 RAISE EXCEPTION 'injected fault for %', NEW.name; \
             END IF; RETURN NEW; END $$",
        "CREATE TRIGGER test_fault BEFORE INSERT ON subjects FOR EACH ROW EXECUTE FUNCTION test_fault()",
    ] {
        sqlx::query(statement).execute(&app.db).await.unwrap();
    }
    app
}

async fn set_fault(app: &TestApp, name: &str, on: bool) {
    let sql = if on { "INSERT INTO test_faults VALUES ($1)" } else { "DELETE FROM test_faults WHERE name = $1" };
    sqlx::query(sql).bind(name).execute(&app.db).await.unwrap();
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap_or_else(|| panic!("a timestamp, not {v}")).parse().unwrap()
}

/// Polls until the job has failed `attempts` times and waits for its next try.
async fn wait_for_retry(app: &TestApp, id: &str, attempts: i32) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, job) = app.get_job(id).await;
        if job["status"] == "queued" && job["attempts"] == attempts && !job["retry"].is_null() {
            return job;
        }
        assert!(job["attempts"].as_i64().unwrap_or(0) <= i64::from(attempts), "missed the retry: {job}");
        assert!(Instant::now() < deadline, "no retry after attempt {attempts}: {job}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The due time (unix seconds) of the one message in the queue's scheduled set,
/// waiting for the worker to put it there (before `until`).
async fn scheduled_message(app: &TestApp, until: DateTime<Utc>) -> i64 {
    loop {
        let scheduled = app.scheduled_due().await;
        if let [due] = scheduled.as_slice() {
            return *due as i64;
        }
        assert!(scheduled.len() < 2 && Utc::now() < until, "scheduled messages: {scheduled:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_after_a_backoff_and_then_succeeds() {
    let app = app().await;
    set_fault(&app, "flaky", true).await;
    let id = app.submit("/v1/register", photo("obama.jpg"), &[("subject", "flaky")]).await;

    let first = wait_for_retry(&app, &id, 1).await;
    let retry = &first["retry"];
    assert!(retry["last_error"].as_str().unwrap().contains("database"), "{first}");
    assert!(first["error"].is_null(), "a job that will be retried has not failed: {first}");
    // The first delay is the base ×0.5–1.5, counted from the failure, which came after the start.
    let next = time(&retry["next_attempt_at"]);
    let wait = next - time(&first["started_at"]);
    assert!(wait >= chrono::Duration::milliseconds(BACKOFF_MS as i64 / 2), "retried too soon: {first}");
    // The worker scheduled the retry's message in Redis for that time.
    let due = scheduled_message(&app, next).await;
    assert!((next.timestamp()..=next.timestamp() + 2).contains(&due), "message due at {due}, retry at {next}");
    // A message arriving early (a duplicate) must not run the job before its time.
    let queue = JobQueue::connect(&app.redis_url, &app.queue).await.unwrap();
    let duplicate = JobRef { job_id: id.parse().unwrap(), kind: JobKind::Register, traceparent: None };
    queue.enqueue(&[duplicate]).await.unwrap();
    // (Read in one statement with the database's clock, which the claim uses.)
    let job_id: uuid::Uuid = id.parse().unwrap();
    loop {
        let (attempts, early): (i32, bool) = sqlx::query_as("SELECT attempts, now() < $2 FROM jobs WHERE id = $1")
            .bind(job_id)
            .bind(next)
            .fetch_one(&app.db)
            .await
            .unwrap();
        if !early {
            break;
        }
        assert_eq!(attempts, 1, "ran before its retry time {next}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let second = wait_for_retry(&app, &id, 2).await;
    let second_wait = time(&second["retry"]["next_attempt_at"]) - time(&retry["next_attempt_at"]);
    assert!(second_wait >= chrono::Duration::milliseconds(BACKOFF_MS as i64), "the second delay doubles: {second}");
    assert_eq!(app.count("subjects").await, 0, "a failed attempt leaves nothing behind");

    set_fault(&app, "flaky", false).await;
    let job = app.wait_for_job(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 3, "{job}");
    assert!(job["retry"].is_null(), "{job}");
    assert_eq!(app.count("faces").await, 1);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_that_persists_fails_the_job_after_max_attempts() {
    let app = app().await;
    set_fault(&app, "broken", true).await;
    let id = app.submit("/v1/register", photo("obama.jpg"), &[("subject", "broken")]).await;
    let job = app.wait_for_job(&id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["attempts"], MAX_ATTEMPTS, "{job}");
    assert_eq!(job["error"]["code"], "internal_error", "{job}");
    let message = job["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("after {MAX_ATTEMPTS} attempts")) && message.contains("database"), "{job}");
    assert!(job["retry"].is_null(), "{job}");
    // Two backoffs of at least 0.5 and 1 × the base separate the three attempts.
    let spent = time(&job["finished_at"]) - time(&job["started_at"]);
    assert!(spent >= chrono::Duration::milliseconds(BACKOFF_MS as i64 * 3 / 2), "no backoff: {spent} {job}");
    assert_eq!((app.count("subjects").await, app.count("faces").await, app.count("job_inputs").await), (0, 0, 0));
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_at_once_without_a_retry() {
    let app = app().await;
    let job = app.run_job("/v1/register", faceless_image(), &[("subject", "nobody")]).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "no_face", "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
    assert!(job["retry"].is_null(), "{job}");
    assert_eq!(app.count("job_inputs").await, 0);
    app.stop().await.unwrap();
}
