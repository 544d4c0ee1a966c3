//! Shared by the examples: the pipeline configured from the same environment
//! variables the worker reads.

use std::path::PathBuf;

use facerec_vision::{PipelineConfig, YuNetConfig};

fn env_path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var(name).unwrap_or_else(|_| panic!("set {name} (`source scripts/env.sh`)")))
}

/// `ORT_DYLIB_PATH`, `FACEREC_DETECTOR_MODEL` and `FACEREC_EMBEDDER_MODEL`,
/// with `threads` intra-op threads per session.
pub fn pipeline_config_from_env(threads: usize) -> PipelineConfig {
    PipelineConfig {
        runtime_library: env_path("ORT_DYLIB_PATH"),
        detector_model: env_path("FACEREC_DETECTOR_MODEL"),
        embedder_model: env_path("FACEREC_EMBEDDER_MODEL"),
        detector: YuNetConfig { intra_threads: threads, ..YuNetConfig::default() },
        intra_threads: threads,
    }
}
