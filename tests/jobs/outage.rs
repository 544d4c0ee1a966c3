//! PostgreSQL briefly down. The api and the worker reach PostgreSQL through a
//! proxy that the test cuts (open connections drop, new ones are refused) and
//! restores, while the test itself reads the database directly. Meanwhile the
//! api answers `503 database_unavailable` with `Retry-After` and keeps nothing;
//! afterwards every job accepted before the outage finishes, exactly once.
//! The reconciler is off: the workers themselves must carry on (apalis
//! redelivers each message whose handler failed, with growing delays).

use std::time::{Duration, Instant};

use facerec_testkit::{Proxy, TestApp, photo, reqwest, serde_json::Value};

async fn postgres_proxy() -> Proxy {
    let server = std::env::var("DATABASE_URL").expect("DATABASE_URL (make test sets it)");
    let url = reqwest::Url::parse(&server).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    Proxy::start(target).await.unwrap()
}

async fn assert_unavailable(response: reqwest::Response, started: Instant) {
    assert_eq!(response.status(), 503);
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    let secs: u64 = retry_after.expect("Retry-After on a 503").parse().unwrap();
    assert!(secs > 0);
    assert!(started.elapsed() < Duration::from_secs(8), "the api answered after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgres_is_down_new_work_gets_503_and_nothing_accepted_is_lost() {
    let proxy = postgres_proxy().await;
    let app = TestApp::spawn_with(&|a| a.database.url = proxy.route(a.database.url.expose()).into(), &|w| {
        w.database.url = proxy.route(w.database.url.expose()).into();
        w.lease_secs = 3;
        w.reconcile_secs = 0;
    })
    .await
    .unwrap();

    // Accepted before the outage: one in the worker's hands (held at its
    // insert by a lock the test takes), the others waiting behind it.
    let subjects = ["in-hand", "biden", "obama-2", "biden-2"];
    let photos = ["obama.jpg", "biden.jpg", "obama2.jpg", "obama3.jpg"];
    let lock = app.lock_table("subjects").await;
    let mut accepted = vec![app.submit("/v1/register", photo(photos[0]), &[("subject", subjects[0])]).await];
    app.wait_until_blocked_on("subjects").await;
    for (subject, file) in subjects.iter().zip(photos).skip(1) {
        accepted.push(app.submit("/v1/register", photo(file), &[("subject", subject)]).await);
    }
    accepted.push(app.submit("/v1/recognize", photo("obama2.jpg"), &[]).await);
    proxy.cut().await;

    let started = Instant::now();
    let refused = app.post_form("/v1/register", Some(photo("biden.jpg")), &[("subject", "refused")]).await;
    assert_unavailable(refused, started).await;
    let started = Instant::now();
    let job = app.client.get(app.url(&format!("/v1/jobs/{}", accepted[0]))).send().await.unwrap();
    assert_unavailable(job, started).await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready without the database");
    assert_eq!(app.count("jobs").await, accepted.len() as i64, "the refused submission left nothing");

    // The worker met the outage mid-job and meets it again claiming the next ones:
    // that its job stays unfinished for a while (a lease's length) is the point.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = app.status_and_attempts(&accepted[0]).await;
    assert_eq!(during, ("processing".to_owned(), 1), "the job in hand could not be finished");
    // The worker's one statement that ends the job is still parked on the
    // lock in PostgreSQL, its connection gone: once the lock goes it may
    // commit on its own (the job ends in its first attempt), or be rolled
    // back (the job is taken again when its lease runs out). Either way the
    // face is stored once.
    lock.commit().await.unwrap();
    proxy.restore();

    for id in &accepted {
        let job = app.wait_for_job(id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let in_hand = app.wait_for_job(&accepted[0]).await;
    let attempts = in_hand["attempts"].as_i64().unwrap();
    assert!((1..=2).contains(&attempts), "ended by its parked statement or taken again once: {in_hand}");
    let faces: Vec<(String,)> =
        sqlx::query_as("SELECT s.name FROM faces f JOIN subjects s ON s.id = f.subject_id ORDER BY 1")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let mut expected: Vec<String> = subjects.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(faces.into_iter().map(|(n,)| n).collect::<Vec<_>>(), expected, "one face per register job");
    let again = app.submit("/v1/register", photo("biden.jpg"), &[("subject", "after")]).await;
    assert_eq!(app.wait_for_job(&again).await["status"], "succeeded");
    app.stop().await.unwrap();
}
