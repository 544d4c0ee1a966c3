//! The submission path under load: uploads beyond the in-flight budget and
//! requests that find every database connection busy get `503 server_busy`
//! with `Retry-After` (never `database_unavailable`), keep nothing, and the
//! api serves again as soon as there is room.

use std::time::Duration;

use facerec_e2e::reqwest;
use facerec_e2e::serde_json::Value;
use facerec_e2e::{TestApp, photo};
use tokio::io::AsyncWriteExt;

/// Opens a submission that declares `declared` bytes and sends only its
/// headers: it holds its share of the upload budget until dropped.
async fn stalled_upload(app: &TestApp, declared: usize) -> tokio::net::TcpStream {
    let addr = app.base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/register HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary=x\r\n\
         Content-Length: {declared}\r\n\r\n--x\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_past_the_in_flight_budget_are_told_to_come_back() {
    let app = TestApp::spawn_with(
        &|a| {
            a.max_upload_bytes_in_flight = 1024 * 1024;
            a.upload_wait_ms = 300;
        },
        &|_| {},
    )
    .await
    .unwrap();
    let stalled = stalled_upload(&app, 900 * 1024).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // obama.jpg (~280 KB) does not fit beside the stalled 900 KiB.
    let resp = app.post_form("/v1/register", Some(photo("obama.jpg")), &[("subject", "obama")]).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "server_busy", "{body}");
    assert_eq!(app.count("jobs").await, 0, "a busy answer keeps nothing");
    // A small upload still fits.
    let small = app.submit("/v1/embed", facerec_e2e::faceless_image(), &[]).await;
    assert_eq!(app.wait_for_job(&small).await["status"], "succeeded");
    // Once the stalled upload is gone, its share is free again.
    drop(stalled);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = app.submit("/v1/register", photo("obama.jpg"), &[("subject", "obama")]).await;
    assert_eq!(app.wait_for_job(&id).await["status"], "succeeded");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_pool_is_server_busy_not_database_unavailable() {
    let app = TestApp::spawn_with(
        &|a| {
            a.db_connections = 1;
            a.db_wait_ms = 300;
        },
        &|_| {},
    )
    .await
    .unwrap();
    // Inserting jobs waits on this lock, holding the api's only connection.
    let lock = app.lock_table("jobs").await;
    let client = app.client.clone();
    let url = app.url("/v1/register");
    let held = tokio::spawn(async move {
        let form = reqwest::multipart::Form::new()
            .text("subject", "obama")
            .part("image", reqwest::multipart::Part::bytes(photo("obama.jpg")).file_name("a.jpg"));
        client.post(url).multipart(form).send().await.unwrap().status().as_u16()
    });
    // The register's insert, not a worker loop that also writes to jobs.
    app.wait_until_statement_blocked_on("jobs", "%INSERT INTO jobs (id, kind, status, params, request_id%").await;
    let (status, body) = app.get_json("/v1/stats").await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("server_busy")), "{body}");
    drop(lock);
    assert_eq!(held.await.unwrap(), 202, "the request that held the connection finishes");
    let (status, _) = app.get_json("/v1/stats").await;
    assert_eq!(status, 200);
    app.stop().await.unwrap();
}
