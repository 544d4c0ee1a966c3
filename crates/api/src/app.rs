use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use facerec_queue::JobQueue;
use facerec_store::Store;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::{info, warn};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::admission::Admission;
use crate::auth::Auth;
use crate::bodies::{batch_body_limit, submission_body_limit};
use crate::job_ends::JobEnds;
use crate::live_slots::LiveStreams;
use crate::routes::{batches, collections, health, jobs, keys, listing, subjects, submit};
use crate::{ApiDoc, ApiError, AppState, ErrorCode, Settings};

/// The HTTP router with every route and middleware.
pub fn router(state: AppState) -> Router {
    let body_limit = submission_body_limit(&state.settings);
    // Uploads held in memory come out of one budget (see `admission`).
    let submissions = Router::new()
        .route("/v1/register", post(submit::register))
        .route("/v1/recognize", post(submit::recognize))
        .route("/v1/embed", post(submit::embed))
        .route("/v1/verify", post(submit::verify))
        .route_layer(axum::middleware::from_fn_with_state(state.admission.clone(), crate::admission::limit_uploads));
    // Archives stream to a spool file, within the room for spooling (see `spooling`); reading
    // them holds a chunk of entries in memory (see `admission`).
    let spooling = axum::middleware::from_fn_with_state(state.admission.spool.clone(), crate::spooling::limit_spooling);
    let batches = Router::new()
        .route("/v1/batches", post(batches::create_batch).route_layer(spooling).get(batches::list_batches))
        .route_layer(DefaultBodyLimit::max(usize::try_from(batch_body_limit(&state.settings)).unwrap_or(usize::MAX)));
    let v1 = Router::new()
        .merge(submissions)
        .merge(batches)
        .route("/v1/batches/{id}", get(batches::get_batch))
        .route("/v1/batches/{id}/items", get(batches::list_batch_items))
        .route("/v1/batches/{id}/cancel", post(batches::cancel_batch))
        .route("/v1/collections", post(collections::create_collection).get(collections::list_collections))
        .route(
            "/v1/collections/{name}",
            get(collections::get_collection)
                .patch(collections::update_collection)
                .delete(collections::delete_collection),
        )
        .route("/v1/collections/{name}/subjects", get(subjects::list_subjects))
        .route(
            "/v1/collections/{name}/subjects/{subject}",
            get(subjects::get_subject).patch(subjects::rename_subject).delete(subjects::delete_subject),
        )
        .route("/v1/collections/{name}/faces", get(subjects::list_faces))
        .route("/v1/faces/{id}", get(subjects::get_face).delete(subjects::delete_face))
        .route("/v1/audit", get(subjects::list_audit))
        .route("/v1/jobs", get(listing::list_jobs))
        .route("/v1/jobs/{id}", get(jobs::get_job))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel_job))
        .route("/v1/stats", get(listing::stats))
        .route("/v1/keys", post(keys::create_key).get(keys::list_keys))
        .route("/v1/keys/{id}", get(keys::get_key).patch(keys::update_key).delete(keys::delete_key))
        // Every /v1 route: who is calling, and may they (an unknown route stays a plain 404).
        .route_layer(axum::middleware::from_fn_with_state(state.auth.clone(), crate::auth::authenticate));
    // The metrics count every tenant's traffic: here only for the master key
    // (no API key has an action for them), unless a listener of their own serves them.
    let metrics = match state.settings.metrics_addr {
        Some(_) => Router::new(),
        None => Router::new()
            .route("/metrics", get(crate::metrics::serve_metrics))
            .route_layer(axum::middleware::from_fn_with_state(state.auth.clone(), crate::auth::authenticate)),
    };
    Router::new()
        .merge(v1)
        .merge(metrics)
        .route("/", get(crate::landing::landing_page))
        // Authenticates itself: a browser's WebSocket cannot send the header (see `live`).
        .route("/v1/live", get(crate::live::live))
        .route("/live", get(crate::live::live_page))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        // Serves the document at /openapi.json and the vendored Swagger UI at /docs.
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(ErrorCode::MethodNotAllowed, "this route does not accept that method")
        })
        .layer(DefaultBodyLimit::max(body_limit))
        // A body that comes in too slowly is cut off with `408 request_timeout`.
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::pacing::pace_bodies))
        // A panicking handler still answers with the JSON error model (and is logged).
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            tracing::error!("handler panicked");
            ApiError::new(ErrorCode::InternalError, "an internal error occurred").into_response()
        }))
        .layer(axum::middleware::from_fn(crate::headers::one_credential))
        .layer(axum::middleware::from_fn_with_state(state.store.clone(), crate::error::render_errors))
        .layer(axum::middleware::from_fn(crate::headers::security_headers))
        // Sees every answer as the client gets it, labelled by its route template.
        .layer(axum::middleware::from_fn(crate::metrics::track_requests))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            let span = tracing::info_span!(
                "request",
                method = %req.method(),
                path = %req.uri().path(),
                request_id,
                trace_id = tracing::field::Empty,
                // The API key's id (never the key), set once it is known.
                key_id = tracing::field::Empty,
            );
            // A client's own W3C trace context is continued, not replaced.
            if let Some(traceparent) = req.headers().get("traceparent").and_then(|v| v.to_str().ok()) {
                facerec_telemetry::continue_trace(&span, traceparent);
            }
            span.record("trace_id", facerec_telemetry::trace_id(&span));
            span
        }))
        // Accept the client's x-request-id (if short and plain) or make one, and echo it back.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        // Outermost: a client's id that is long, odd or repeated is dropped here, so one is made.
        .layer(axum::middleware::from_fn(crate::headers::drop_unsafe_request_id))
        .with_state(state)
}

/// A bound, connected api server, ready to run.
pub struct Api {
    listener: TcpListener,
    /// `FACEREC_API_METRICS_ADDR`'s listener, when set.
    metrics_listener: Option<TcpListener>,
    router: Router,
    /// `FACEREC_HEADER_TIMEOUT_SECS`: the deadline for a request's header block.
    header_timeout: Option<Duration>,
    shutdown_timeout: Duration,
    store: Store,
}

impl Api {
    /// Connects to PostgreSQL (applying migrations) and Redis, and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.check()?;
        facerec_telemetry::metrics::prometheus(crate::metrics::SERVICE);
        metrics::counter!(facerec_telemetry::metrics::names::UPLOADS_REFUSED).increment(0);
        for kind in facerec_core::JobKind::ALL {
            metrics::counter!(facerec_telemetry::metrics::names::JOBS_SUBMITTED, "kind" => kind.as_str()).increment(0);
        }
        for outcome in ["answered", "dropped", "refused", "no_worker"] {
            metrics::counter!(facerec_telemetry::metrics::names::LIVE_FRAMES, "outcome" => outcome).increment(0);
        }
        metrics::gauge!(facerec_telemetry::metrics::names::LIVE_STREAMS).set(0.0);
        if settings.master_key.is_none() {
            warn!(
                "no FACEREC_MASTER_KEY: the api is open, anyone who reaches it can register, recognize and read \
                 every face; set a master key before exposing it beyond localhost"
            );
        }
        let db_wait = Duration::from_millis(settings.db_wait_ms);
        let store = Store::connect_with(settings.database.url.expose(), settings.db_connections, db_wait)
            .await
            .context("connecting to PostgreSQL")?;
        store.migrate().await.context("migrating the database")?;
        let queue = JobQueue::connect(settings.queue.redis_url.expose(), &settings.queue.name)
            .await
            .context("connecting to Redis")?;
        let listener = TcpListener::bind(settings.addr).await.with_context(|| format!("binding {}", settings.addr))?;
        let metrics_listener = match settings.metrics_addr {
            Some(addr) => {
                Some(TcpListener::bind(addr).await.with_context(|| format!("binding the metrics listener {addr}"))?)
            }
            None => None,
        };
        let shutdown_timeout = Duration::from_secs(settings.shutdown_timeout_secs);
        let header_timeout =
            (settings.header_timeout_secs > 0).then(|| Duration::from_secs(settings.header_timeout_secs));
        let admission = Arc::new(Admission::new(&settings));
        let job_ends = Arc::new(JobEnds::start(store.clone()));
        let auth = Arc::new(Auth::new(&settings, store.clone()));
        let live = Arc::new(LiveStreams::new(&settings));
        let state =
            AppState { store: store.clone(), queue, admission, job_ends, auth, live, settings: Arc::new(settings) };
        Ok(Self { listener, metrics_listener, router: router(state), header_timeout, shutdown_timeout, store })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Where `/metrics` is served on a listener of its own (`FACEREC_API_METRICS_ADDR`), if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// Serves until `shutdown` completes; then stops accepting connections and
    /// lets requests in flight finish, for at most the shutdown timeout.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        if let Some(addr) = self.metrics_addr() {
            info!(addr = %addr, "api metrics listening");
        }
        let header_timeout = self.header_timeout;
        let metrics = self.metrics_listener.take().map(|l| crate::metrics::serve_listener(l, header_timeout));
        info!(addr = %self.local_addr(), "api listening");
        let depth = crate::metrics::watch_queue_depth(self.store.clone());
        let result = self.serve(shutdown).await;
        depth.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        result
    }

    async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (draining, drain_started) = tokio::sync::oneshot::channel();
        let stop = async move {
            shutdown.await;
            info!("shutting down: finishing requests in flight");
            let _ = draining.send(());
        };
        let serve = crate::serve::serve(self.listener, self.router, self.header_timeout, stop);
        let timeout = self.shutdown_timeout;
        let deadline = async move {
            match drain_started.await {
                Ok(()) => tokio::time::sleep(timeout).await,
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            () = serve => Ok(()),
            () = deadline => {
                warn!(timeout_secs = timeout.as_secs(), "requests still in flight at the shutdown deadline; exiting");
                Ok(())
            }
        }
    }
}
