//! Talking to the app as its clients do: multipart submissions, JSON calls
//! (as the test's own client or another one), and polling a job until it
//! ends. [`wait_for_job_at`] and [`form`] also serve tests of the binaries.

use std::time::{Duration, Instant};

use facerec_core::JobStatus;
use serde_json::Value;

use crate::TestApp;

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Posts a multipart form with `image` (as a file part) and text fields.
    pub async fn post_form(&self, path: &str, image: Option<Vec<u8>>, fields: &[(&str, &str)]) -> reqwest::Response {
        self.post_form_with_headers(path, image, fields, &[]).await
    }

    pub async fn post_form_with_headers(
        &self,
        path: &str,
        image: Option<Vec<u8>>,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).multipart(form(image, fields));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.expect("request reaches the api")
    }

    /// Submits a job and returns its id, asserting the `202` answer.
    pub async fn submit(&self, path: &str, image: Vec<u8>, fields: &[(&str, &str)]) -> String {
        let resp = self.post_form(path, Some(image), fields).await;
        assert_eq!(resp.status(), 202, "submission refused: {}", resp.text().await.unwrap_or_default());
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        let body: Value = resp.json().await.unwrap();
        let id = body["job_id"].as_str().expect("job_id in body").to_owned();
        assert_eq!(location, format!("/v1/jobs/{id}"));
        assert_eq!(body["status"], "queued");
        id
    }

    pub async fn get_job(&self, id: &str) -> (u16, Value) {
        self.get_json(&format!("/v1/jobs/{id}")).await
    }

    /// Polls the job, as a client would, until it reaches a terminal state (60 s at most).
    pub async fn wait_for_job(&self, id: &str) -> Value {
        wait_for_job_at(&self.client, &self.base_url, id, Duration::from_secs(60)).await
    }

    /// Submits and waits: the finished job.
    pub async fn run_job(&self, path: &str, image: Vec<u8>, fields: &[(&str, &str)]) -> Value {
        let id = self.submit(path, image, fields).await;
        self.wait_for_job(&id).await
    }

    /// Sends a request with an optional JSON body; the status and the JSON answer (`null` if none).
    pub async fn json(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(&self.client, method, path, body).await
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        self.json(reqwest::Method::GET, path, None).await
    }

    /// Sends a request as `client`; the status and the JSON answer (`null` if none).
    pub async fn call(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = client.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request reaches the api");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Posts a multipart form as `client` (`image` as a file part, if any).
    pub async fn form_as(
        &self,
        client: &reqwest::Client,
        path: &str,
        image: Option<Vec<u8>>,
        fields: &[(&str, &str)],
    ) -> (u16, Value) {
        let response =
            client.post(self.url(path)).multipart(form(image, fields)).send().await.expect("request reaches the api");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates a collection (with the server's defaults); panics unless the api answers `201`.
    /// Recognize refuses a collection that does not exist, so a test that
    /// searches before it registers makes its collection first.
    pub async fn create_collection(&self, name: &str) {
        let body = serde_json::json!({ "name": name });
        let (status, answer) = self.json(reqwest::Method::POST, "/v1/collections", Some(body)).await;
        assert_eq!(status, 201, "creating collection {name}: {answer}");
    }
}

/// A multipart form with `image` (as a file part, if any) and text fields.
pub fn form(image: Option<Vec<u8>>, fields: &[(&str, &str)]) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new();
    if let Some(bytes) = image {
        form = form.part("image", reqwest::multipart::Part::bytes(bytes).file_name("upload"));
    }
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    form
}

/// Polls `GET {base_url}/v1/jobs/{id}` until the job ends (a terminal
/// [`JobStatus`]), at most `timeout`: its final record. For apps and binaries alike.
pub async fn wait_for_job_at(client: &reqwest::Client, base_url: &str, id: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let response = client.get(format!("{base_url}/v1/jobs/{id}")).send().await.expect("the api answers");
        let status = response.status();
        let job: Value = response.json().await.expect("a JSON job record");
        assert_eq!(status, 200, "GET job {id}: {job}");
        let ended =
            job["status"].as_str().and_then(|s| s.parse::<JobStatus>().ok()).is_some_and(JobStatus::is_terminal);
        if ended {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} not finished after {timeout:?}: {job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Percent-encodes `s` for one path segment: everything but unreserved ASCII,
/// so `/`, spaces and emoji travel inside the segment.
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
