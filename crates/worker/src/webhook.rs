//! Webhook delivery, apart from inference: when a job (or a batch) with a
//! `callback_url` ends, its outcome (the same JSON as `GET /v1/jobs/{id}`, or
//! `GET /v1/batches/{id}`) is POSTed there,
//! signed with HMAC-SHA256, retried with exponential backoff and jitter for
//! about an hour, every attempt recorded. Targets that resolve to any address
//! that is not public ([`facerec_core::is_global`]) are refused before
//! connecting; loopback and private ranges only where allowed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use facerec_core::{JobView, error_chain, may_deliver_to};
use facerec_store::{DueBatchWebhook, DueWebhook, Store, WebhookAttempt};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use sha2::Sha256;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::Settings;
use crate::backoff::Backoff;

/// Deliveries one worker sends at once; each runs as its own task, so a slow
/// receiver holds up only its own deliveries.
const IN_FLIGHT: usize = 64;
/// Retries are spaced at most this far apart.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// How long a taken delivery stays ours: its attempt ends within the receiver
/// timeout (plus resolving and connecting); after that another worker may send
/// it again, as a numbered redelivery, should this one have died.
fn hold(settings: &Settings) -> Duration {
    Duration::from_secs(settings.webhook_timeout_secs * 2 + 10)
}

/// The deliveries a worker may have in flight; [`finish_deliveries`] waits for them.
pub(crate) fn delivery_slots() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(IN_FLIGHT))
}

/// At shutdown, once the loop is stopped: waits (at most `timeout`) for the
/// deliveries in flight, so that none is cut off and sent again later.
pub(crate) async fn finish_deliveries(slots: &Semaphore, timeout: Duration) {
    if tokio::time::timeout(timeout, slots.acquire_many(IN_FLIGHT as u32)).await.is_err() {
        warn!("webhook deliveries still in flight at shutdown; they will be sent again as redeliveries");
    }
}

pub(crate) async fn delivery_loop(store: Store, settings: Arc<Settings>, slots: Arc<Semaphore>) {
    if settings.webhook_key().is_none() {
        warn!("FACEREC_WEBHOOK_SECRET is not set: webhooks are sent unsigned");
    }
    let mut tick = tokio::time::interval(Duration::from_millis(settings.webhook_poll_ms.max(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let free = slots.available_permits();
        let due = if free == 0 { Vec::new() } else { due_deliveries(&store, free, hold(&settings)).await };
        // A full batch means more may be due: look again at once.
        if due.len() < free || free == 0 {
            tick.tick().await;
        }
        for d in due {
            let slot = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
            let (store, settings) = (store.clone(), settings.clone());
            tokio::spawn(async move {
                send_and_record(&store, &settings, &d).await;
                drop(slot);
            });
        }
    }
}

/// What a delivery is about: a job's end or a batch's end.
#[derive(Debug, Clone, Copy)]
enum Target {
    Job(Uuid),
    Batch(Uuid),
}

/// One webhook to send: where, what, and which attempt.
struct Delivery {
    target: Target,
    url: String,
    attempt: i32,
    body: serde_json::Result<Vec<u8>>,
}

/// Due job webhooks, then due batch webhooks, `free` at most in all.
async fn due_deliveries(store: &Store, free: usize, hold: Duration) -> Vec<Delivery> {
    let mut due: Vec<Delivery> = match store.due_webhooks(free as i64, hold).await {
        Ok(due) => due.into_iter().map(Delivery::from).collect(),
        Err(e) => {
            warn!(error = %e, "could not read due webhooks; will retry");
            Vec::new()
        }
    };
    let left = free.saturating_sub(due.len());
    if left > 0 {
        match store.due_batch_webhooks(left as i64, hold).await {
            Ok(batches) => due.extend(batches.into_iter().map(Delivery::from)),
            Err(e) => warn!(error = %e, "could not read due batch webhooks; will retry"),
        }
    }
    due
}

impl From<DueWebhook> for Delivery {
    fn from(d: DueWebhook) -> Self {
        let target = Target::Job(d.job.id.0);
        // The body is the job as `GET /v1/jobs/{id}` shows it, as of now.
        Self { target, url: d.url, attempt: d.attempt, body: serde_json::to_vec(&JobView::from(d.job)) }
    }
}

impl From<DueBatchWebhook> for Delivery {
    fn from(d: DueBatchWebhook) -> Self {
        Self {
            target: Target::Batch(d.batch.batch_id),
            url: d.url,
            attempt: d.attempt,
            body: serde_json::to_vec(&d.batch),
        }
    }
}

async fn send_and_record(store: &Store, settings: &Settings, d: &Delivery) {
    let started = Instant::now();
    let sent = deliver(d, settings).await;
    let outcome = attempt(d, settings, &sent, started.elapsed());
    let label = match (outcome.delivered, outcome.retry_after) {
        (true, _) => "delivered",
        (false, Some(_)) => "retried",
        (false, None) => "gave_up",
    };
    metrics::counter!(facerec_telemetry::metrics::names::WEBHOOK_DELIVERIES, "outcome" => label).increment(1);
    match &sent {
        Ok(_) => info!(target = ?d.target, attempt = d.attempt, "webhook delivered"),
        // The details are for us: the tenant's record gets the plain message.
        Err(e) => warn!(target = ?d.target, attempt = d.attempt, error = %error_chain(e),
                        retry_in = ?outcome.retry_after, "webhook not delivered"),
    }
    let recorded = match d.target {
        Target::Job(id) => store.record_webhook_attempt(id, d.attempt, &outcome).await,
        Target::Batch(id) => store.record_batch_webhook_attempt(id, d.attempt, &outcome).await,
    };
    if let Err(e) = recorded {
        warn!(target = ?d.target, error = %e, "could not record a webhook attempt");
    }
}

/// What an attempt did, as recorded (and shown to the tenant).
fn attempt(
    d: &Delivery,
    settings: &Settings,
    sent: &Result<StatusCode, Undelivered>,
    duration: Duration,
) -> WebhookAttempt {
    match sent {
        Ok(status) => WebhookAttempt {
            http_status: Some(i32::from(status.as_u16())),
            error: None,
            duration,
            retry_after: None,
            delivered: true,
        },
        Err(e) => WebhookAttempt {
            http_status: e.http_status(),
            error: Some(e.public_message()),
            duration,
            retry_after: (!e.permanent() && d.attempt < settings.webhook_max_attempts).then(|| {
                Backoff { base: Duration::from_millis(settings.webhook_backoff_ms), max: MAX_BACKOFF }.delay(d.attempt)
            }),
            delivered: false,
        },
    }
}

/// `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Why a delivery did not happen. Its `Display` (with its causes) is for the
/// log; the tenant's `webhook.last_error` is [`Undelivered::public_message`],
/// since what our resolver finds and what our network answers are not theirs to learn.
#[derive(Debug, thiserror::Error)]
enum Undelivered {
    #[error("the callback_url is not a URL")]
    InvalidUrl(#[source] url::ParseError),
    #[error("the callback_url has no host")]
    NoHost,
    #[error("cannot resolve {host}")]
    Unresolvable {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host} has no address")]
    NoAddress { host: String },
    #[error("resolving {host} timed out")]
    ResolveTimeout { host: String },
    #[error(
        "{host} resolves to {ip}, not a public address (FACEREC_WEBHOOK_ALLOW_PRIVATE lets loopback and private ranges through)"
    )]
    NotPublic { host: String, ip: IpAddr },
    #[error("cannot encode the body: {0}")]
    Encode(String),
    #[error("cannot build an HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("the request failed")]
    Request(#[source] reqwest::Error),
    #[error("the receiver answered {0}")]
    Answered(StatusCode),
}

impl Undelivered {
    /// The sentence the tenant sees: their receiver's own answer, else only
    /// whether we refused the target or could not reach it.
    fn public_message(&self) -> String {
        match self {
            Self::InvalidUrl(_) | Self::NoHost => "refused: not a valid callback_url".to_owned(),
            Self::NotPublic { .. } => "refused: not a public address".to_owned(),
            Self::Answered(status) => format!("the receiver answered {status}"),
            Self::Unresolvable { .. }
            | Self::NoAddress { .. }
            | Self::ResolveTimeout { .. }
            | Self::Encode(_)
            | Self::Client(_)
            | Self::Request(_) => "could not be delivered".to_owned(),
        }
    }

    /// Whether another attempt cannot do better (a refused target is not retried).
    fn permanent(&self) -> bool {
        matches!(self, Self::InvalidUrl(_) | Self::NoHost | Self::NotPublic { .. } | Self::Encode(_))
    }

    fn http_status(&self) -> Option<i32> {
        match self {
            Self::Answered(status) => Some(i32::from(status.as_u16())),
            _ => None,
        }
    }
}

async fn deliver(d: &Delivery, settings: &Settings) -> Result<StatusCode, Undelivered> {
    let (host, port) = host_and_port(&d.url)?;
    // Resolving gets the receiver's timeout too, so that an attempt ends within
    // the hold (2 × timeout + 10 s) and is never sent again while it runs.
    let timeout = Duration::from_secs(settings.webhook_timeout_secs);
    let address = tokio::time::timeout(timeout, resolve(&host, port, settings.webhook_allow_private))
        .await
        .map_err(|_| Undelivered::ResolveTimeout { host: host.clone() })??;
    let body = d.body.as_ref().map_err(|e| Undelivered::Encode(e.to_string()))?.clone();
    let timestamp = chrono::Utc::now().timestamp().max(0) as u64;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve the host itself, past the check below.
        .no_proxy()
        .resolve(&host, address)
        .build()
        .map_err(Undelivered::Client)?;
    let (id_header, id) = match d.target {
        Target::Job(id) => ("x-facerec-job-id", id),
        Target::Batch(id) => ("x-facerec-batch-id", id),
    };
    let mut request = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header("x-facerec-timestamp", timestamp.to_string())
        .header(id_header, id.to_string())
        .header("x-facerec-delivery-attempt", d.attempt.to_string());
    if let Some(secret) = settings.webhook_key() {
        request = request.header("x-facerec-signature", signature(secret, timestamp, &body));
    }
    let status = request.body(body).send().await.map_err(Undelivered::Request)?.status();
    if status.is_success() {
        Ok(status)
    } else {
        debug!(%status, "webhook receiver refused");
        Err(Undelivered::Answered(status))
    }
}

fn host_and_port(url: &str) -> Result<(String, u16), Undelivered> {
    let parsed = url::Url::parse(url).map_err(Undelivered::InvalidUrl)?;
    let host = parsed.host_str().ok_or(Undelivered::NoHost)?.to_owned();
    Ok((host, parsed.port_or_known_default().unwrap_or(80)))
}

/// The address to connect to, pinned so that a DNS answer cannot change
/// between the check and the request. Refused when any address of the host is
/// not public (see [`facerec_core::may_deliver_to`]), loopback and private ranges aside where allowed.
async fn resolve(host: &str, port: u16, allow_private: bool) -> Result<SocketAddr, Undelivered> {
    let lookup = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((lookup, port))
        .await
        .map_err(|source| Undelivered::Unresolvable { host: host.to_owned(), source })?
        .collect();
    if let Some(refused) = addrs.iter().find(|a| !may_deliver_to(a.ip(), allow_private)) {
        return Err(Undelivered::NotPublic { host: host.to_owned(), ip: refused.ip() });
    }
    addrs.first().copied().ok_or_else(|| Undelivered::NoAddress { host: host.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Known answer: Python's hmac.new(b"secret", b"1700000000.{}", hashlib.sha256).hexdigest()
        let expected = "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163";
        assert_eq!(signature("secret", 1_700_000_000, b"{}"), expected);
    }

    #[tokio::test]
    async fn a_target_that_is_not_public_is_refused_before_connecting_and_the_tenant_is_not_told_why() {
        // Literal addresses: lookup_host answers them without any DNS query.
        for (host, allow_private) in [
            ("[::127.0.0.1]", true),
            ("[64:ff9b::7f00:1]", true),
            ("[fec0::1]", true),
            ("240.0.0.1", true),
            ("198.18.0.1", true),
            ("169.254.169.254", true),
            ("10.0.0.1", false),
            ("127.0.0.1", false),
            ("[::1]", false),
        ] {
            let refused = resolve(host, 80, allow_private).await.expect_err(host);
            assert!(matches!(refused, Undelivered::NotPublic { .. }), "{host}: {refused:?}");
            assert!(refused.permanent(), "{host}");
            assert_eq!(refused.public_message(), "refused: not a public address");
            assert!(error_chain(&refused).contains(host), "the log keeps the details: {refused}");
        }
        assert_eq!(resolve("127.0.0.1", 8080, true).await.unwrap(), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(resolve("[::1]", 8080, true).await.unwrap(), "[::1]:8080".parse().unwrap());
    }

    #[test]
    fn failures_on_our_side_show_the_tenant_one_plain_sentence() {
        let unresolvable = Undelivered::Unresolvable {
            host: "db.internal.corp".to_owned(),
            source: std::io::Error::other("failed to lookup address information"),
        };
        assert_eq!(unresolvable.public_message(), "could not be delivered");
        assert!(!unresolvable.permanent(), "DNS may answer later");
        assert_eq!(error_chain(&unresolvable), "cannot resolve db.internal.corp: failed to lookup address information");
        let answered = Undelivered::Answered(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answered.public_message(), "the receiver answered 503 Service Unavailable");
        assert_eq!(answered.http_status(), Some(503));
    }
}
