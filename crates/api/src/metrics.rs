//! The api's Prometheus metrics: every request by route template and status,
//! and the queue depth, read from PostgreSQL when `/metrics` is scraped.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use facerec_telemetry::metrics::{CONTENT_TYPE as PROMETHEUS_TEXT, names, prometheus, render};
use tracing::warn;

use crate::AppState;

/// The api's name in `facerec_build_info` and exported traces.
pub const SERVICE: &str = "facerec-api";

/// A queue depth slower than this to read is left at its last value.
const DEPTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Counts and times every request. Routes are labelled by their template
/// (`/v1/jobs/{id}`), never the path itself; requests that match no route
/// share the label `unmatched`.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!(names::HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(names::HTTP_REQUEST_DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// Prometheus metrics of the api (text exposition format): requests by route
/// and status, jobs submitted, uploads refused, and the queue depth. Open,
/// like `/healthz`: it carries counts, never ids, subjects or keys.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain"))
)]
pub async fn serve_metrics(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(DEPTH_TIMEOUT, state.store.queue_depth()).await {
        Ok(Ok(depth)) => {
            metrics::gauge!(names::QUEUE_DEPTH, "state" => "queued").set(depth.queued as f64);
            metrics::gauge!(names::QUEUE_DEPTH, "state" => "retry_wait").set(depth.retry_wait as f64);
            metrics::gauge!(names::QUEUE_DEPTH, "state" => "processing").set(depth.processing as f64);
        }
        Ok(Err(e)) => warn!(error = %e, "could not read the queue depth for /metrics"),
        Err(_) => warn!("reading the queue depth for /metrics timed out"),
    }
    ([(CONTENT_TYPE, PROMETHEUS_TEXT)], render(prometheus(SERVICE))).into_response()
}
