//! The submission path under load: uploads beyond the in-flight budget and
//! requests that find every database connection busy get `503 server_busy`
//! with `Retry-After` (never `database_unavailable`), keep nothing, and the
//! api serves again as soon as there is room. Slow clients cannot hold it:
//! a trickling body gets `408`, a header block has one deadline, and one key
//! may hold only its share of the upload budget.

use std::time::{Duration, Instant};

use facerec_testkit::reqwest;
use facerec_testkit::serde_json::Value;
use facerec_testkit::{TestApp, photo, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Opens a submission that declares `declared` bytes and sends only its
/// headers and the start of its body: once the api's `100 Continue` says it
/// was admitted, it holds its share of the upload budget until dropped. It
/// comes from 127.0.0.2, another client than the test's own requests (in
/// open mode an address is a caller, with its own share of the budget).
async fn stalled_upload(app: &TestApp, declared: usize) -> tokio::net::TcpStream {
    let addr = app.base_url.trim_start_matches("http://");
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    let head = format!(
        "POST /v1/register HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary=x\r\n\
         Content-Length: {declared}\r\nExpect: 100-continue\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 256];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
        let n = read.expect("an answer to the stalled upload within 10 s").unwrap();
        assert!(n > 0, "the api closed the stalled upload: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 100"), "{}", String::from_utf8_lossy(&answer));
    stream.write_all(b"--x\r\n").await.unwrap();
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
    // obama.jpg (~280 KB) does not fit beside the stalled 900 KiB.
    let resp = app.post_form("/v1/register", Some(photo("obama.jpg")), &[("subject", "obama")]).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "server_busy", "{body}");
    assert_eq!(app.count("jobs").await, 0, "a busy answer keeps nothing");
    // A small upload still fits.
    let small = app.submit("/v1/embed", facerec_testkit::faceless_image(), &[]).await;
    assert_eq!(app.wait_for_job(&small).await["status"], "succeeded");
    // Once the stalled upload is gone, its share is free again: as soon as the
    // api has seen it go, a register without a subject (refused only after
    // its admission, keeping nothing) gets its 400 instead of a 503.
    drop(stalled);
    let describe = || "room for an upload once the stalled one is gone".to_owned();
    wait_until(Duration::from_secs(10), describe, || async {
        app.post_form("/v1/register", Some(photo("obama.jpg")), &[]).await.status() == 400
    })
    .await;
    let id = app.submit("/v1/register", photo("obama.jpg"), &[("subject", "obama")]).await;
    assert_eq!(app.wait_for_job(&id).await["status"], "succeeded");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_pool_is_server_busy_not_database_unavailable() {
    let app = TestApp::api_only_with(&|a| {
        a.db_connections = 1;
        a.db_wait_ms = 300;
    })
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

// Slow clients (issue 29, item 7): a body that trickles in, a header block sent
// line by line, and one caller filling the budget, each against raw sockets.

/// The first part of a multipart body with boundary `x`: an image field's head.
const IMAGE_PART_HEAD: &[u8] = b"--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n";

/// Opens a register that declares `declared` bytes and asks `Expect:
/// 100-continue`: the api's `100 Continue` says it was admitted and began
/// reading the body.
async fn raw_register(app: &TestApp, key: &str, declared: usize) -> (Answers, OwnedWriteHalf) {
    let addr = app.base_url.trim_start_matches("http://");
    let (reader, mut writer) = TcpStream::connect(addr).await.unwrap().into_split();
    let head = format!(
        "POST /v1/register HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {declared}\r\n\
         Expect: 100-continue\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    (Answers { reader, bytes: Vec::new() }, writer)
}

/// The answers coming back on a raw connection.
struct Answers {
    reader: OwnedReadHalf,
    bytes: Vec<u8>,
}

impl Answers {
    /// The next answer (an interim `100 Continue`, or a final one with its
    /// body) as text; what came before the connection closed, if it did.
    async fn next(&mut self, within: Duration) -> String {
        let read = async {
            let mut buf = [0u8; 8192];
            loop {
                if let Some(end) = self.complete() {
                    let answer: Vec<u8> = self.bytes.drain(..end).collect();
                    return String::from_utf8_lossy(&answer).into_owned();
                }
                match self.reader.read(&mut buf).await {
                    Ok(0) | Err(_) => return String::from_utf8_lossy(&std::mem::take(&mut self.bytes)).into_owned(),
                    Ok(n) => self.bytes.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(within, read).await.unwrap_or_else(|_| panic!("no answer within {within:?}"))
    }

    /// The length of the first complete answer in what was read, if there is one.
    fn complete(&self) -> Option<usize> {
        let head_end = self.bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&self.bytes[..head_end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        (self.bytes.len() >= head_end + length).then_some(head_end + length)
    }
}

/// Reads until the peer closes the connection (or resets it).
async fn until_closed(reader: &mut OwnedReadHalf) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trickling_body_is_cut_off_and_its_budget_serves_another_tenant() {
    let app = TestApp::api_only_keyed(&|a| {
        a.max_upload_bytes = 1024 * 1024;
        // Room for the trickling upload's 2 MiB, not for a photo beside it.
        a.max_upload_bytes_in_flight = 2 * 1024 * 1024 + 100 * 1024;
        a.upload_wait_ms = 8000;
        a.body_idle_timeout_secs = 1;
        a.min_upload_bytes_per_sec = 16 * 1024;
    })
    .await
    .unwrap();
    let (slow, other) = (app.create_key(&["*"], &["*"]).await, app.create_key(&["*"], &["*"]).await);
    let (mut answers, mut writer) = raw_register(&app, &slow.key, 2 * 1024 * 1024).await;
    let admitted = answers.next(Duration::from_secs(10)).await;
    assert!(admitted.starts_with("HTTP/1.1 100"), "{admitted}");
    let began = Instant::now();
    // A byte every 200 ms: never idle for a second, and far under 16 KiB/s.
    let trickle = tokio::spawn(async move {
        let mut sent = writer.write_all(IMAGE_PART_HEAD).await;
        while sent.is_ok() {
            // Pacing the trickle is the point.
            tokio::time::sleep(Duration::from_millis(200)).await;
            sent = writer.write_all(b"a").await;
        }
    });
    // Meanwhile the other tenant's photo waits for room, and gets it when the trickle is cut off.
    let (status, accepted) =
        app.form_as(&other.client, "/v1/register", Some(photo("obama.jpg")), &[("subject", "obama")]).await;
    assert_eq!(status, 202, "{accepted}");
    let cut = answers.next(Duration::from_secs(10)).await;
    assert!(cut.starts_with("HTTP/1.1 408"), "{cut}");
    assert!(cut.contains("\"request_timeout\""), "{cut}");
    assert!(began.elapsed() < Duration::from_secs(5), "cut off only after {:?}", began.elapsed());
    trickle.abort();
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_block_sent_line_by_line_is_cut_off_at_its_deadline() {
    let app = TestApp::api_only_with(&|a| a.header_timeout_secs = 1).await.unwrap();
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let (mut silent, _silent_writer) = TcpStream::connect(&addr).await.unwrap().into_split();
    let (mut reader, mut writer) = TcpStream::connect(&addr).await.unwrap().into_split();
    let began = Instant::now();
    writer.write_all(b"POST /v1/register HTTP/1.1\r\n").await.unwrap();
    // A header line every 300 ms: each well within the deadline, the block never complete.
    let dribble = tokio::spawn(async move {
        for line in 0.. {
            // Pacing the header lines is the point.
            tokio::time::sleep(Duration::from_millis(300)).await;
            if writer.write_all(format!("X-Line-{line}: y\r\n").as_bytes()).await.is_err() {
                break;
            }
        }
    });
    let closed = tokio::time::timeout(Duration::from_secs(10), until_closed(&mut reader)).await;
    assert!(closed.is_ok(), "a header line every 300 ms kept the connection open for 10 s");
    assert!(began.elapsed() < Duration::from_secs(4), "closed only after {:?}", began.elapsed());
    let closed = tokio::time::timeout(Duration::from_secs(5), until_closed(&mut silent)).await;
    assert!(closed.is_ok(), "a connection that sends nothing stays open");
    dribble.abort();
    // The api still serves.
    assert_eq!(app.get_json("/healthz").await.0, 200);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_filling_its_share_of_the_upload_budget_leaves_room_for_another() {
    let app = TestApp::api_only_keyed(&|a| {
        a.max_upload_bytes = 1024 * 1024;
        // Two uploads of 2 MiB would fill it; one key may hold half (one of them).
        a.max_upload_bytes_in_flight = 4 * 1024 * 1024;
        a.upload_wait_ms = 500;
        // These uploads stall on purpose; the test is over long before this.
        a.body_idle_timeout_secs = 60;
    })
    .await
    .unwrap();
    let (greedy, other) = (app.create_key(&["*"], &["*"]).await, app.create_key(&["*"], &["*"]).await);
    let (mut first, mut first_writer) = raw_register(&app, &greedy.key, 2 * 1024 * 1024).await;
    let admitted = first.next(Duration::from_secs(10)).await;
    assert!(admitted.starts_with("HTTP/1.1 100"), "{admitted}");
    first_writer.write_all(IMAGE_PART_HEAD).await.unwrap();
    let (mut second, _second_writer) = raw_register(&app, &greedy.key, 2 * 1024 * 1024).await;
    let refused = second.next(Duration::from_secs(10)).await;
    assert!(refused.starts_with("HTTP/1.1 429"), "the key's second upload is over its share: {refused}");
    assert!(refused.contains("\"rate_limited\""), "{refused}");
    let (status, accepted) =
        app.form_as(&other.client, "/v1/register", Some(photo("obama.jpg")), &[("subject", "obama")]).await;
    assert_eq!(status, 202, "another key still finds room: {accepted}");
    drop((first, first_writer));
    app.stop().await.unwrap();
}
