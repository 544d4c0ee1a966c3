use std::path::PathBuf;

use clap::Parser;
use facerec_vision::{DecodeLimits, PipelineConfig, YuNetConfig};

/// Worker configuration: defaults, overridden by environment variables, overridden by flags.
#[derive(Debug, Clone, Parser)]
#[command(name = "facerec-worker", version, about = "facerec inference worker")]
pub struct Settings {
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres:postgres@127.0.0.1:5432/facerec")]
    pub database_url: String,
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379/")]
    pub redis_url: String,
    /// Redis key prefix of the job queue; the api must use the same.
    #[arg(long, env = "FACEREC_QUEUE", default_value = facerec_queue::DEFAULT_QUEUE)]
    pub queue: String,
    /// Jobs processed at once by this process (one model pipeline each).
    #[arg(long, env = "FACEREC_WORKER_CONCURRENCY", default_value_t = 1)]
    pub concurrency: usize,
    /// ONNX Runtime intra-op threads per pipeline; 0 = cores / concurrency.
    #[arg(long, env = "FACEREC_INTRA_THREADS", default_value_t = 0)]
    pub intra_threads: usize,
    #[arg(long, env = "ORT_DYLIB_PATH", default_value = ".cache/onnxruntime/libonnxruntime.so")]
    pub onnxruntime_library: PathBuf,
    #[arg(long, env = "FACEREC_DETECTOR_MODEL", default_value = "models/face_detection_yunet_2023mar_dynamic.onnx")]
    pub detector_model: PathBuf,
    #[arg(long, env = "FACEREC_EMBEDDER_MODEL", default_value = "models/face_recognition_sface_2021dec.onnx")]
    pub embedder_model: PathBuf,
    /// Minimum detector score for a face to count.
    #[arg(long, env = "FACEREC_DETECTION_THRESHOLD", default_value_t = 0.6)]
    pub detection_threshold: f32,
    /// Recognize handles at most this many faces per photo, largest first.
    #[arg(long, env = "FACEREC_MAX_FACES", default_value_t = 10)]
    pub max_faces: usize,
    /// Images with more pixels are refused before decoding.
    #[arg(long, env = "FACEREC_MAX_PIXELS", default_value_t = 40_000_000)]
    pub max_pixels: u64,
    /// How long a claimed job stays ours before another worker may take it
    /// over. Jobs take well under a second; a redelivered message waits this long
    /// for a crashed worker's lease to run out.
    #[arg(long, env = "FACEREC_JOB_LEASE_SECS", default_value_t = 60)]
    pub lease_secs: u64,
    /// Attempts before a job that keeps failing transiently is failed for good.
    #[arg(long, env = "FACEREC_JOB_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: i32,
    /// How often this worker removes finished messages from Redis, in seconds (0: never).
    #[arg(long, env = "FACEREC_QUEUE_VACUUM_SECS", default_value_t = 60)]
    pub vacuum_secs: u64,
    /// How long finished messages stay in Redis before the vacuum removes them, in seconds.
    #[arg(long, env = "FACEREC_QUEUE_RETENTION_SECS", default_value_t = 600)]
    pub queue_retention_secs: u64,
    /// How often an idle worker looks for new jobs, in milliseconds.
    #[arg(long, env = "FACEREC_POLL_INTERVAL_MS", default_value_t = 25)]
    pub poll_interval_ms: u64,
}

impl Settings {
    pub fn pipeline_config(&self) -> PipelineConfig {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let intra_threads = match self.intra_threads {
            0 => (cores / self.concurrency.max(1)).max(1),
            n => n,
        };
        PipelineConfig {
            runtime_library: self.onnxruntime_library.clone(),
            detector_model: self.detector_model.clone(),
            embedder_model: self.embedder_model.clone(),
            detector: YuNetConfig {
                score_threshold: self.detection_threshold,
                intra_threads,
                ..YuNetConfig::default()
            },
            intra_threads,
        }
    }

    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits { max_pixels: self.max_pixels, ..DecodeLimits::default() }
    }
}
