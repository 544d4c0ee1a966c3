//! The api as the CLI uses it: find a job by idempotency key, submit a
//! register, poll a job, see whether a face still exists. Busy answers
//! (`429`, `503`) wait for `Retry-After` and try again; a lost connection is
//! retried until the connect timeout.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use facerec_core::{JobId, JobView};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

use crate::ApiArgs;

/// `{code, message}`, as in api error answers.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// What a register submission got.
pub enum Submission {
    /// Recorded as this job (queued); `replayed` when the idempotency key
    /// named an earlier job, which is the one answered.
    Accepted { job_id: JobId, replayed: bool },
    /// The api refused the upload (4xx): nothing was recorded.
    Refused(ErrorBody),
}

/// One register to send.
pub struct Register<'a> {
    pub bytes: Vec<u8>,
    pub file_name: String,
    pub content_type: &'static str,
    pub subject: &'a str,
    pub collection: &'a str,
    pub consent: Option<&'a str>,
    pub idempotency_key: String,
}

/// Whether a face a job registered is still in the gallery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaceState {
    Present,
    /// Deleted since: the face itself, or its subject or collection.
    Deleted,
    /// The key may not read the gallery (no `gallery.read`), or the id is not one.
    Unknown,
}

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    /// How long the api may stay unreachable before the run gives up.
    give_up_after: Duration,
}

/// Longest wait a `Retry-After` may impose at once.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

impl ApiClient {
    pub fn new(api: &ApiArgs, connections: usize, give_up_after: Duration) -> anyhow::Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = &api.api_key {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                .context("--api-key must be printable ASCII")?;
            // Kept out of reqwest's debug output.
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let base = api.api.as_str();
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(connections)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned(), give_up_after })
    }

    /// Fails when the api does not answer `/healthz`, or refuses the key
    /// (a run would otherwise fail every image the same way).
    pub async fn check(&self) -> anyhow::Result<()> {
        let url = format!("{}/healthz", self.base);
        let response = self.http.get(&url).send().await.with_context(|| format!("cannot reach the api at {url}"))?;
        if !response.status().is_success() {
            bail!("the api at {url} answered {}", response.status());
        }
        let url = format!("{}/v1/jobs?limit=1", self.base);
        let response = self.http.get(&url).send().await.with_context(|| format!("cannot reach the api at {url}"))?;
        if matches!(response.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            bail!("the api refused the key ({status}): {body}; pass --api-key or set FACEREC_API_KEY");
        }
        Ok(())
    }

    /// `method path` with an optional JSON body; the answer's JSON, or an error with the api's.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<Option<serde_json::Value>> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("cannot reach the api at {url}"))?;
        let response = expect_ok(response).await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Ok(Some(response.json().await.context("reading the api's answer")?))
    }

    /// The job submitted with this idempotency key, if any.
    pub async fn job_by_key(&self, key: &str) -> anyhow::Result<Option<JobView>> {
        #[derive(Deserialize)]
        struct Page {
            jobs: Vec<JobView>,
        }
        let url = format!("{}/v1/jobs", self.base);
        let response = self.send(|| self.http.get(&url).query(&[("idempotency_key", key), ("limit", "1")])).await?;
        let page: Page = expect_ok(response).await?.json().await.context("reading the job list")?;
        Ok(page.jobs.into_iter().next())
    }

    /// The job once it has ended, or as it is after `wait` (the api holds the
    /// request until then: `wait_ms`; an api without it answers at once).
    pub async fn job_when_ended(&self, id: JobId, wait: Duration) -> anyhow::Result<JobView> {
        let url = format!("{}/v1/jobs/{id}", self.base);
        let wait_ms = wait.as_millis().to_string();
        let response = self.send(|| self.http.get(&url).query(&[("wait_ms", wait_ms.as_str())])).await?;
        expect_ok(response).await?.json().await.context("reading the job")
    }

    /// Whether the face `id` still exists (`GET /v1/faces/{id}`): a resumed
    /// file whose job succeeded is only registered if its face is still there.
    pub async fn face_state(&self, id: &str) -> anyhow::Result<FaceState> {
        // The id comes from a job's result; never let it shape the path otherwise.
        let Ok(id) = uuid::Uuid::parse_str(id) else { return Ok(FaceState::Unknown) };
        let url = format!("{}/v1/faces/{id}", self.base);
        let response = self.send(|| self.http.get(&url)).await?;
        match response.status() {
            StatusCode::NOT_FOUND => {
                // Only the api's own answer counts, not a 404 from something in front of it.
                let body: Value = response.json().await.unwrap_or_default();
                let deleted = body["error"]["code"] == "face_not_found";
                Ok(if deleted { FaceState::Deleted } else { FaceState::Unknown })
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Ok(FaceState::Unknown),
            _ => {
                expect_ok(response).await?;
                Ok(FaceState::Present)
            }
        }
    }

    pub async fn register(&self, r: &Register<'_>) -> anyhow::Result<Submission> {
        let url = format!("{}/v1/register", self.base);
        let form = || {
            let part = Part::bytes(r.bytes.clone()).file_name(r.file_name.clone()).mime_str(r.content_type);
            let mut form =
                Form::new().text("subject", r.subject.to_owned()).text("collection", r.collection.to_owned());
            if let Some(consent) = r.consent {
                form = form.text("consent", consent.to_owned());
            }
            form.part("image", part.expect("a valid MIME type"))
        };
        let response = self
            .send(|| self.http.post(&url).header("Idempotency-Key", r.idempotency_key.as_str()).multipart(form()))
            .await?;
        let status = response.status();
        if status == StatusCode::ACCEPTED {
            /// The `202` body (the api's `Accepted`): the job to follow.
            #[derive(Deserialize)]
            struct Accepted {
                job_id: JobId,
            }
            let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
            let Accepted { job_id } = response.json().await.context("reading the submission answer")?;
            return Ok(Submission::Accepted { job_id, replayed });
        }
        let body: Value = response.json().await.unwrap_or_default();
        let error = ErrorBody {
            code: body["error"]["code"].as_str().unwrap_or("http_error").to_owned(),
            message: body["error"]["message"]
                .as_str()
                .map_or_else(|| format!("the api answered {status}"), str::to_owned),
        };
        if status.is_client_error() {
            return Ok(Submission::Refused(error));
        }
        bail!("the api failed: {} ({})", error.message, error.code)
    }

    /// Sends a request, waiting out busy answers and lost connections. `429`
    /// is waited out for as long as it lasts (the queue is full: back-pressure);
    /// `503` and lost connections only until the connect timeout; any other
    /// `5xx` is tried [`SERVER_ERROR_TRIES`] times.
    async fn send(&self, request: impl Fn() -> reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let mut unavailable_since: Option<Instant> = None;
        let mut backoff = Duration::from_millis(200);
        let mut server_errors = 0;
        loop {
            let wait = match request().send().await {
                Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                    unavailable_since = None;
                    retry_after(&response)
                }
                Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    self.still_waiting(&mut unavailable_since, anyhow!("the api answers 503"))?;
                    retry_after(&response)
                }
                Ok(response) if response.status().is_server_error() && server_errors + 1 < SERVER_ERROR_TRIES => {
                    server_errors += 1;
                    backoff
                }
                Ok(response) => return Ok(response),
                Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => {
                    self.still_waiting(&mut unavailable_since, e.into())?;
                    backoff
                }
                Err(e) => return Err(e.into()),
            };
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Fails with [`ApiUnreachable`] once the api has been unavailable for the connect timeout.
    fn still_waiting(&self, since: &mut Option<Instant>, cause: anyhow::Error) -> anyhow::Result<()> {
        let since = *since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.give_up_after {
            return Err(cause.context(ApiUnreachable(self.give_up_after)));
        }
        Ok(())
    }
}

/// Tries of a request the api answers with a server error (other than `503`).
const SERVER_ERROR_TRIES: u32 = 3;

/// The api stayed unreachable: the whole run stops (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("the api could not be reached for {0:?}")]
pub struct ApiUnreachable(pub Duration);

fn retry_after(response: &reqwest::Response) -> Duration {
    let secs = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    secs.map_or(Duration::from_secs(1), Duration::from_secs).clamp(Duration::from_millis(100), MAX_RETRY_AFTER)
}

async fn expect_ok(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    bail!("the api answered {status}: {body}")
}
