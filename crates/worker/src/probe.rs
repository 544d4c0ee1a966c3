//! The worker's own small HTTP listener (`FACEREC_WORKER_METRICS_ADDR`):
//! `/metrics` for Prometheus, `/healthz` (the process answers) and `/readyz`
//! (models loaded, PostgreSQL and Redis answer). It starts before the models
//! load, so an orchestrator sees a live process that is not ready yet.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use facerec_queue::JobQueue;
use facerec_store::Store;
use facerec_telemetry::metrics::{CONTENT_TYPE as PROMETHEUS_TEXT, names, prometheus, render};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::{info, warn};

/// The worker's name in `facerec_build_info` and exported traces.
pub const SERVICE: &str = "facerec-worker";

/// A dependency slower than this to answer counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness checks: set once the worker is built, cleared when it
/// starts shutting down.
#[derive(Clone, Default)]
pub(crate) struct Readiness(Arc<ReadinessInner>);

#[derive(Default)]
struct ReadinessInner {
    connections: OnceLock<(Store, JobQueue)>,
    stopping: std::sync::atomic::AtomicBool,
}

impl Readiness {
    pub fn built(&self, store: Store, queue: JobQueue) {
        let _ = self.0.connections.set((store, queue));
        metrics::gauge!(names::WORKER_READY).set(1.0);
    }

    pub fn stopping(&self) {
        self.0.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        metrics::gauge!(names::WORKER_READY).set(0.0);
    }

    /// `None` before the models are loaded or once stopping; else whether
    /// PostgreSQL and Redis answer.
    async fn check(&self) -> Option<(bool, bool)> {
        if self.0.stopping.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let (store, queue) = self.0.connections.get()?;
        Some(tokio::join!(within(store.ping()), within(queue.ping())))
    }
}

async fn within(check: impl Future<Output = bool>) -> bool {
    tokio::time::timeout(CHECK_TIMEOUT, check).await.unwrap_or(false)
}

/// Counters that alerts read, present at 0 from the start (a counter that
/// appears only at its first increment hides that increment from `rate`).
pub(crate) fn zero_counters() {
    metrics::counter!(names::RECONCILER_RESENDS).increment(0);
    metrics::counter!(names::LEASE_TAKEOVERS).increment(0);
    for outcome in ["delivered", "retried", "gave_up"] {
        metrics::counter!(names::WEBHOOK_DELIVERIES, "outcome" => outcome).increment(0);
    }
    for outcome in ["answered", "error", "expired"] {
        metrics::counter!(names::LIVE_SERVED, "outcome" => outcome).increment(0);
    }
    for kind in facerec_core::JobKind::ALL {
        for outcome in ["succeeded", "failed", "retried", "lease_lost", "error"] {
            metrics::counter!(names::JOBS, "kind" => kind.as_str(), "outcome" => outcome).increment(0);
        }
    }
}

/// Binds `addr` and serves the probes and metrics in the background.
pub(crate) async fn serve(addr: SocketAddr, readiness: Readiness) -> anyhow::Result<SocketAddr> {
    prometheus(SERVICE);
    metrics::gauge!(names::WORKER_READY).set(0.0);
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding the metrics listener {addr}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .with_state(readiness);
    info!(addr = %bound, "metrics and probes listening");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(bound)
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    match readiness.check().await {
        Some((true, true)) => {
            (StatusCode::OK, axum::Json(json!({"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}})))
                .into_response()
        }
        Some((postgres, redis)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not_ready", "checks": {"postgres": word(postgres), "redis": word(redis)}})),
        )
            .into_response(),
        None => {
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "starting_or_stopping"}))).into_response()
        }
    }
}

async fn serve_metrics(State(readiness): State<Readiness>) -> Response {
    let ready = matches!(readiness.check().await, Some((true, true)));
    metrics::gauge!(names::WORKER_READY).set(if ready { 1.0 } else { 0.0 });
    ([(CONTENT_TYPE, PROMETHEUS_TEXT)], render(prometheus(SERVICE))).into_response()
}
