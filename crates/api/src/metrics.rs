//! The api's Prometheus metrics: every request by route template and status,
//! and the queue depth, read from PostgreSQL every two seconds.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use facerec_store::Store;
use facerec_telemetry::metrics::{CONTENT_TYPE as PROMETHEUS_TEXT, names, prometheus, render};
use tokio::net::TcpListener;
use tracing::warn;

/// The api's name in `facerec_build_info` and exported traces.
pub const SERVICE: &str = "facerec-api";

/// How often the queue depth is read from PostgreSQL, and how long a read may take.
const DEPTH_EVERY: Duration = Duration::from_secs(2);
const DEPTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Counts and times every request. Routes are labelled by their template
/// (`/v1/jobs/{id}`), never the path itself; requests that match no route
/// share the label `unmatched`.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method.to_owned()), ("route", route), ("status", status)];
    metrics::counter!(names::HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(names::HTTP_REQUEST_DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// The standard methods by name, anything else as `other`: a label value
/// comes from a fixed set, and any token is a valid HTTP method.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Keeps `facerec_queue_depth` current: one count every [`DEPTH_EVERY`],
/// whatever the scrapes (an open `/metrics` puts no load on the database). A
/// depth that cannot be read is NaN, not its last value, so no alert fires
/// on a stale figure.
pub fn watch_queue_depth(store: Store) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(DEPTH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let depth = match tokio::time::timeout(DEPTH_TIMEOUT, store.queue_depth()).await {
                Ok(Ok(depth)) => Some(depth),
                Ok(Err(e)) => {
                    warn!(error = %e, "could not read the queue depth for /metrics");
                    None
                }
                Err(_) => {
                    warn!("reading the queue depth for /metrics timed out");
                    None
                }
            };
            let value = |n: Option<i64>| n.map_or(f64::NAN, |n| n as f64);
            metrics::gauge!(names::QUEUE_DEPTH, "state" => "queued").set(value(depth.map(|d| d.queued)));
            metrics::gauge!(names::QUEUE_DEPTH, "state" => "retry_wait").set(value(depth.map(|d| d.retry_wait)));
            metrics::gauge!(names::QUEUE_DEPTH, "state" => "processing").set(value(depth.map(|d| d.processing)));
        }
    })
}

/// Prometheus metrics of the api (text exposition format): requests by route
/// and status, jobs submitted, uploads refused, and the queue depth. They
/// carry counts, never ids, subjects or keys, but the counts are every
/// tenant's: on the api's address they need the master key (when one is
/// set); `FACEREC_API_METRICS_ADDR` serves them on an address of their own
/// instead, without a key. Serving them touches no database.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain"),
        (status = 401, description = "`missing_api_key`, `invalid_api_key` (with a master key set)", body = crate::ErrorBody),
        (status = 403, description = "`forbidden`: an API key; only the master key reads the metrics", body = crate::ErrorBody),
        (status = 404, description = "`not_found`: they are served on `FACEREC_API_METRICS_ADDR` instead", body = crate::ErrorBody)
    )
)]
pub async fn serve_metrics() -> Response {
    ([(CONTENT_TYPE, PROMETHEUS_TEXT)], render(prometheus(SERVICE))).into_response()
}

/// Serves `/metrics` alone on `listener` (`FACEREC_API_METRICS_ADDR`), until
/// the task is aborted when the api stops.
pub fn serve_listener(
    listener: TcpListener,
    header_timeout: Option<std::time::Duration>,
) -> tokio::task::JoinHandle<()> {
    let router = Router::new()
        .route("/metrics", get(serve_metrics))
        .layer(axum::middleware::from_fn(crate::headers::security_headers));
    // The same accept loop as the api's own port: a client that never ends its headers is cut off.
    tokio::spawn(crate::serve::serve(listener, router, header_timeout, std::future::pending()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        assert_eq!(method_label(&Method::from_bytes(b"FOO1").unwrap()), "other");
        assert_eq!(method_label(&Method::CONNECT), "other");
    }
}
