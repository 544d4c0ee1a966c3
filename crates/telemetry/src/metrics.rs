//! Prometheus metrics: every name and label in one place, the process's
//! recorder, and the text the `/metrics` endpoints serve.
//!
//! Label values are bounded sets (route templates, job kinds, outcomes,
//! stages): never a job id, a subject or a collection.

use std::sync::OnceLock;
use std::time::Instant;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Metric names. Counters end in `_total`, durations are in seconds.
pub mod names {
    /// Counter: HTTP requests answered, by `method`, `route` (the template) and `status`.
    pub const HTTP_REQUESTS: &str = "facerec_http_requests_total";
    /// Histogram: HTTP request duration, by `method`, `route` and `status`.
    pub const HTTP_REQUEST_DURATION: &str = "facerec_http_request_duration_seconds";
    /// Counter: jobs recorded by the api for single submissions, by `kind`.
    pub const JOBS_SUBMITTED: &str = "facerec_jobs_submitted_total";
    /// Counter: job attempts ended by a worker, by `kind` and `outcome`
    /// (`succeeded`, `failed`, `retried`, `lease_lost`, and `error` when the
    /// outcome could not be written and the message is redelivered).
    pub const JOBS: &str = "facerec_jobs_total";
    /// Gauge: jobs by `state`: `queued` (due), `retry_wait` (waiting for a retry), `processing`.
    pub const QUEUE_DEPTH: &str = "facerec_queue_depth";
    /// Histogram: from a job becoming due (submitted, or its retry time) to a worker claiming it, by `kind`.
    pub const QUEUE_WAIT: &str = "facerec_queue_wait_seconds";
    /// Histogram: a job attempt in the worker, claim to outcome, by `kind` and `outcome`.
    pub const JOB_DURATION: &str = "facerec_job_duration_seconds";
    /// Histogram: one stage of a job, by `stage` (see [`Stage`](super::Stage)).
    pub const STAGE_DURATION: &str = "facerec_stage_duration_seconds";
    /// Histogram: faces the detector found in one image, by `kind`.
    pub const FACES_PER_IMAGE: &str = "facerec_faces_per_image";
    /// Histogram: faces in one embedder run.
    pub const EMBED_BATCH_SIZE: &str = "facerec_embed_batch_size";
    /// Counter: webhook delivery attempts, by `outcome` (`delivered`, `retried`, `gave_up`).
    pub const WEBHOOK_DELIVERIES: &str = "facerec_webhook_deliveries_total";
    /// Counter: job messages the reconciler sent again (message or worker lost).
    pub const RECONCILER_RESENDS: &str = "facerec_reconciler_resends_total";
    /// Counter: jobs claimed from a worker whose lease had run out.
    pub const LEASE_TAKEOVERS: &str = "facerec_lease_takeovers_total";
    /// Gauge: 1 once a worker has loaded its models and reached PostgreSQL and Redis.
    pub const WORKER_READY: &str = "facerec_worker_ready";
    /// Counter: uploads refused because the api's upload budget was spent (`busy`).
    pub const UPLOADS_REFUSED: &str = "facerec_uploads_refused_total";
    /// Gauge: live streams open on this api.
    pub const LIVE_STREAMS: &str = "facerec_live_streams";
    /// Counter: live frames received by the api, by `outcome` (`answered`,
    /// `dropped` (a newer frame replaced it), `refused` (an error message), `no_worker`).
    pub const LIVE_FRAMES: &str = "facerec_live_frames_total";
    /// Histogram: a live frame from receipt to answer, in the api.
    pub const LIVE_LATENCY: &str = "facerec_live_latency_seconds";
    /// Counter: live frames a worker served, by `outcome` (`answered`, `error`, `expired`).
    pub const LIVE_SERVED: &str = "facerec_live_served_total";
    /// Gauge, always 1: the `service` and `version` of the process.
    pub const BUILD_INFO: &str = "facerec_build_info";
}

/// The stages of a job, as the `stage` label of [`names::STAGE_DURATION`]
/// and the names of their spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading the image's bytes into pixels.
    Decode,
    /// Finding the faces.
    Detect,
    /// Cropping and aligning each face, and measuring its quality.
    Align,
    /// Turning aligned faces into embeddings.
    Embed,
    /// Matching embeddings against the gallery.
    Search,
    /// Writing the outcome to PostgreSQL.
    Store,
}

impl Stage {
    pub const ALL: [Stage; 6] = [Stage::Decode, Stage::Detect, Stage::Align, Stage::Embed, Stage::Search, Stage::Store];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Detect => "detect",
            Stage::Align => "align",
            Stage::Embed => "embed",
            Stage::Search => "search",
            Stage::Store => "store",
        }
    }

    /// A span for this stage (named after it in exported traces).
    pub fn span(self) -> tracing::Span {
        tracing::info_span!("stage", otel.name = self.as_str(), stage = self.as_str())
    }

    /// Runs `f` inside this stage's span and records its duration.
    pub fn run<T>(self, f: impl FnOnce() -> T) -> T {
        let span = self.span();
        let _entered = span.enter();
        let started = Instant::now();
        let out = f();
        self.record(started);
        out
    }

    /// Awaits `fut` inside this stage's span and records its duration.
    pub async fn time<F: std::future::Future>(self, fut: F) -> F::Output {
        use tracing::Instrument;
        let started = Instant::now();
        let out = fut.instrument(self.span()).await;
        self.record(started);
        out
    }

    /// Records the duration since `started` for this stage.
    pub fn record(self, started: Instant) {
        metrics::histogram!(names::STAGE_DURATION, "stage" => self.as_str()).record(started.elapsed().as_secs_f64());
    }
}

const HTTP_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const JOB_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];
const STAGE_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
const FACE_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder: the one [`install`]ed at start
/// (a binary's, by [`run_service`](crate::run_service)), else one installed
/// now with metrics on (the test kit's apps). Services call this at start:
/// metrics recorded before a recorder is installed are lost.
pub fn prometheus(service: &'static str) -> &'static PrometheusHandle {
    install(service, true)
}

/// Installs the process's Prometheus recorder once (as `service`,
/// `facerec-api` or `facerec-worker`, in `facerec_build_info`); later calls
/// return the first one. `enabled: false` (`FACEREC_METRICS=off`) installs
/// none: nothing is recorded (every metric call costs next to nothing) and
/// `/metrics` is empty.
pub fn install(service: &'static str, enabled: bool) -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        if !enabled {
            tracing::info!("FACEREC_METRICS=off: no metrics are recorded");
            return PrometheusBuilder::new().build_recorder().handle();
        }
        let builder = [
            (names::HTTP_REQUEST_DURATION, HTTP_BUCKETS),
            (names::LIVE_LATENCY, STAGE_BUCKETS),
            (names::QUEUE_WAIT, JOB_BUCKETS),
            (names::JOB_DURATION, JOB_BUCKETS),
            (names::STAGE_DURATION, STAGE_BUCKETS),
            (names::FACES_PER_IMAGE, FACE_BUCKETS),
            (names::EMBED_BATCH_SIZE, BATCH_BUCKETS),
        ]
        .into_iter()
        .fold(PrometheusBuilder::new(), |b, (name, buckets)| {
            b.set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets).expect("bucket lists are not empty")
        });
        // Several services in one process (the tests) share the recorder of the first.
        let handle = match builder.install_recorder() {
            Ok(handle) => handle,
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
                PrometheusBuilder::new().build_recorder().handle()
            }
        };
        describe();
        // Histograms keep every observation until upkeep folds them in; without
        // a scrape (no listener, Prometheus down) that would grow forever.
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        });
        metrics::gauge!(names::BUILD_INFO, "service" => service, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// The Prometheus text exposition of every metric of the process.
pub fn render(handle: &PrometheusHandle) -> String {
    handle.run_upkeep();
    handle.render()
}

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(names::HTTP_REQUESTS, "HTTP requests answered, by method, route template and status");
    describe_histogram!(names::HTTP_REQUEST_DURATION, Unit::Seconds, "HTTP request duration");
    describe_counter!(names::JOBS_SUBMITTED, "Jobs recorded by the api, by kind");
    describe_counter!(names::JOBS, "Job attempts ended by a worker, by kind and outcome");
    describe_gauge!(names::QUEUE_DEPTH, "Jobs by state: queued (due), retry_wait, processing");
    describe_histogram!(names::QUEUE_WAIT, Unit::Seconds, "From a job becoming due to a worker claiming it");
    describe_histogram!(names::JOB_DURATION, Unit::Seconds, "A job attempt in the worker, claim to outcome");
    describe_histogram!(
        names::STAGE_DURATION,
        Unit::Seconds,
        "One stage of a job: decode, detect, align, embed, search, store"
    );
    describe_histogram!(names::FACES_PER_IMAGE, "Faces the detector found in one image");
    describe_histogram!(names::EMBED_BATCH_SIZE, "Faces in one embedder run");
    describe_counter!(names::WEBHOOK_DELIVERIES, "Webhook delivery attempts, by outcome");
    describe_counter!(names::RECONCILER_RESENDS, "Job messages the reconciler sent again");
    describe_counter!(names::LEASE_TAKEOVERS, "Jobs claimed from a worker whose lease had run out");
    describe_gauge!(names::WORKER_READY, "1 once the worker's models are loaded and PostgreSQL and Redis answer");
    describe_counter!(names::UPLOADS_REFUSED, "Uploads refused because the api's upload budget was spent");
    describe_gauge!(names::LIVE_STREAMS, "Live streams open on this api");
    describe_counter!(names::LIVE_FRAMES, "Live frames received by the api, by outcome");
    describe_histogram!(names::LIVE_LATENCY, Unit::Seconds, "A live frame from receipt to answer, in the api");
    describe_counter!(names::LIVE_SERVED, "Live frames a worker served, by outcome");
    describe_gauge!(names::BUILD_INFO, "Always 1: the service and version of this process");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_are_rendered_with_their_labels() {
        let handle = prometheus("test");
        Stage::Detect.run(|| std::thread::sleep(std::time::Duration::from_millis(2)));
        metrics::counter!(names::JOBS, "kind" => "register", "outcome" => "succeeded").increment(3);
        let text = render(handle);
        assert!(text.contains(r#"facerec_jobs_total{kind="register",outcome="succeeded"} 3"#), "{text}");
        assert!(text.contains(r#"facerec_stage_duration_seconds_bucket{stage="detect",le="0.0025"}"#), "{text}");
        assert!(text.contains(r#"facerec_stage_duration_seconds_count{stage="detect"} 1"#), "{text}");
        assert!(text.contains(r#"facerec_build_info{service="test",version="#), "{text}");
        assert!(text.contains("# HELP facerec_jobs_total"), "{text}");
    }

    #[test]
    fn stage_names_are_distinct() {
        let names: std::collections::HashSet<_> = Stage::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names.len(), Stage::ALL.len());
    }
}
