//! Webhook delivery, apart from inference: when a job (or a batch) with a
//! `callback_url` ends, its outcome (the same JSON as `GET /v1/jobs/{id}`, or
//! `GET /v1/batches/{id}`) is POSTed there,
//! signed with HMAC-SHA256, retried with exponential backoff and jitter for
//! about an hour, every attempt recorded. Targets that resolve to loopback,
//! private, link-local or metadata addresses are refused unless allowed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use facerec_store::{DueBatchWebhook, DueWebhook, Store, WebhookAttempt};
use hmac::{Hmac, Mac};
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
        Self { target: Target::Job(d.job.job_id.0), url: d.url, attempt: d.attempt, body: serde_json::to_vec(&d.job) }
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
    let outcome = deliver(d, settings).await;
    let label = match (outcome.delivered, outcome.retry_after) {
        (true, _) => "delivered",
        (false, Some(_)) => "retried",
        (false, None) => "gave_up",
    };
    metrics::counter!(facerec_telemetry::metrics::names::WEBHOOK_DELIVERIES, "outcome" => label).increment(1);
    if outcome.delivered {
        info!(target = ?d.target, attempt = d.attempt, "webhook delivered");
    } else {
        warn!(target = ?d.target, attempt = d.attempt, status = ?outcome.http_status, error = ?outcome.error,
              retry_in = ?outcome.retry_after, "webhook not delivered");
    }
    let recorded = match d.target {
        Target::Job(id) => store.record_webhook_attempt(id, d.attempt, &outcome).await,
        Target::Batch(id) => store.record_batch_webhook_attempt(id, d.attempt, &outcome).await,
    };
    if let Err(e) = recorded {
        warn!(target = ?d.target, error = %e, "could not record a webhook attempt");
    }
}

/// `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Addresses a webhook must not reach unless private targets are allowed:
/// loopback, private, link-local (incl. cloud metadata), shared, unspecified, multicast.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

async fn deliver(d: &Delivery, settings: &Settings) -> WebhookAttempt {
    let started = Instant::now();
    let retry = |error: Option<String>, http_status: Option<i32>, permanent: bool| WebhookAttempt {
        http_status,
        error,
        duration: started.elapsed(),
        retry_after: (!permanent && d.attempt < settings.webhook_max_attempts).then(|| {
            Backoff { base: Duration::from_millis(settings.webhook_backoff_ms), max: MAX_BACKOFF }.delay(d.attempt)
        }),
        delivered: false,
    };
    // Resolving gets the receiver's timeout too, so that an attempt ends within
    // the hold (2 × timeout + 10 s) and is never sent again while it runs.
    let timeout = Duration::from_secs(settings.webhook_timeout_secs);
    let target = match tokio::time::timeout(timeout, resolve(&d.url, settings.webhook_allow_private)).await {
        Ok(Ok(target)) => target,
        Ok(Err((message, permanent))) => return retry(Some(message), None, permanent),
        Err(_) => return retry(Some("resolving the host timed out".to_owned()), None, false),
    };
    let body = match &d.body {
        Ok(body) => body.clone(),
        Err(e) => return retry(Some(format!("cannot encode the body: {e}")), None, true),
    };
    let timestamp = chrono::Utc::now().timestamp().max(0) as u64;
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&target.0, target.1)
        .build()
    {
        Ok(client) => client,
        Err(e) => return retry(Some(format!("cannot build an HTTP client: {e}")), None, false),
    };
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
    match request.body(body).send().await {
        Ok(resp) if resp.status().is_success() => WebhookAttempt {
            http_status: Some(i32::from(resp.status().as_u16())),
            error: None,
            duration: started.elapsed(),
            retry_after: None,
            delivered: true,
        },
        Ok(resp) => {
            let status = resp.status();
            debug!(%status, "webhook receiver refused");
            retry(Some(format!("the receiver answered {status}")), Some(i32::from(status.as_u16())), false)
        }
        Err(e) => retry(Some(format!("request failed: {e}")), None, false),
    }
}

/// The host and the address to connect to (pinned, so a DNS answer cannot
/// change between the check and the request). Err: message and whether it is permanent.
async fn resolve(url: &str, allow_private: bool) -> Result<(String, SocketAddr), (String, bool)> {
    let parsed = url::Url::parse(url).map_err(|e| (format!("invalid callback_url: {e}"), true))?;
    let host = parsed.host_str().ok_or_else(|| ("callback_url has no host".to_owned(), true))?.to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let lookup = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((lookup.as_str(), port))
        .await
        .map_err(|e| (format!("cannot resolve {host}: {e}"), false))?
        .collect();
    let first = *addrs.first().ok_or_else(|| (format!("{host} has no address"), false))?;
    if !allow_private && let Some(bad) = addrs.iter().find(|a| is_private(a.ip())) {
        let message =
            format!("refused: {host} resolves to a private address {} (FACEREC_WEBHOOK_ALLOW_PRIVATE)", bad.ip());
        return Err((message, true));
    }
    Ok((host, first))
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

    #[test]
    fn private_and_metadata_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
