//! Graceful shutdown (what SIGTERM triggers in the binaries). A worker stops
//! taking jobs, finishes the one in hand and leaves the rest queued for other
//! workers; past its deadline it exits anyway and the job still ends once (by
//! the statement it left in PostgreSQL, or retaken when its lease runs out).
//! The api stops accepting connections, lets the request in flight finish,
//! and exits.
//!
//! A job is kept "in hand" by locking the `subjects` table from the test, so
//! that the worker's register blocks on its insert until the test lets go.

use std::time::{Duration, Instant};

use facerec_testkit::{TestApp, photo, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_finishes_its_job_and_leaves_the_rest_queued() {
    let mut app = TestApp::spawn().await.unwrap();
    let lock = app.lock_table("subjects").await;
    let in_hand = app.submit("/v1/register", photo("obama.jpg"), &[("subject", "in-hand")]).await;
    app.wait_until_blocked_on("subjects").await;
    let waiting = app.submit("/v1/register", photo("biden.jpg"), &[("subject", "waiting")]).await;
    // Time in which a worker that wrongly took a second job would take it: proving it does not.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let worker = app.shut_down_worker();
    // Proving that the worker does NOT exit while its job is in hand, for a while.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!worker.is_finished(), "the worker must wait for its job in hand");
    lock.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), worker).await.expect("worker exits").unwrap().unwrap();

    assert_eq!(app.status_and_attempts(&in_hand).await, ("succeeded".to_owned(), 1));
    assert_eq!(app.status_and_attempts(&waiting).await, ("queued".to_owned(), 0), "not taken while stopping");

    // Another worker picks up what was left (its message may have been taken by
    // the stopped worker's poller: the reconciler re-sends it).
    app.start_worker(&|w| {
        w.reconcile_secs = 1;
        w.requeue_after_secs = 1;
    })
    .await
    .unwrap();
    let job = app.wait_for_job(&waiting).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
    assert_eq!(app.count("faces").await, 2);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_deadline_a_stopping_worker_exits_and_its_job_still_ends_once() {
    let mut app = TestApp::spawn_with(&|_| {}, &|w| {
        w.shutdown_timeout_secs = 1;
        w.lease_secs = 3;
    })
    .await
    .unwrap();
    let lock = app.lock_table("subjects").await;
    let id = app.submit("/v1/register", photo("obama.jpg"), &[("subject", "slow")]).await;
    app.wait_until_blocked_on("subjects").await;

    let started = Instant::now();
    let worker = app.shut_down_worker();
    tokio::time::timeout(Duration::from_secs(10), worker).await.expect("worker exits").unwrap().unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "exited after {took:?}");

    app.start_worker(&|w| {
        w.reconcile_secs = 1;
        w.requeue_after_secs = 1;
    })
    .await
    .unwrap();
    lock.commit().await.unwrap();
    let job = app.wait_for_job(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // The stopped worker's one statement that ends the job may still be parked
    // on the lock in PostgreSQL: once the lock goes it either commits on its
    // own (the job ends in its first attempt) or was rolled back with its
    // connection (the new worker takes the job again). The face is stored once.
    let attempts = job["attempts"].as_i64().unwrap();
    assert!((1..=2).contains(&attempts), "ended by its parked statement or retaken once: {job}");
    assert_eq!(app.count("faces").await, 1, "the job ran to completion once: {job}");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_api_finishes_the_request_in_flight_and_refuses_new_connections() {
    let mut app = TestApp::spawn().await.unwrap();
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let image = photo("obama.jpg");
    let boundary = "facerec-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"subject\"\r\n\r\nslow-upload\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&image);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let head = format!(
        "POST /v1/register HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );

    // An upload that takes a while: half now, the rest after the api was told to stop.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let half = body.len() / 2;
    stream.write_all(&body[..half]).await.unwrap();
    // Pacing the upload: its first half is in the api's hands before the stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let api = app.shut_down_api();
    let describe = || "the stopping api to refuse new connections".to_owned();
    wait_until(Duration::from_secs(5), describe, || async { tokio::net::TcpStream::connect(&addr).await.is_err() })
        .await;
    assert!(!api.is_finished(), "the api must wait for the request in flight");
    stream.write_all(&body[half..]).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    tokio::time::timeout(Duration::from_secs(5), api).await.expect("api exits").unwrap().unwrap();

    // The accepted job is processed although the api is gone.
    let describe = || "the accepted upload to be processed".to_owned();
    wait_until(Duration::from_secs(30), describe, || async { app.count("faces").await > 0 }).await;
    app.stop().await.unwrap();
}
