//! Shared by the examples and the integration tests: the pipeline configured
//! from the same environment variables the worker reads, and the test photos.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use facerec_vision::{CenterFaceConfig, DetectorChoice, PipelineConfig, YuNetConfig};

pub fn env_path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var(name).unwrap_or_else(|_| panic!("set {name} (`source scripts/env.sh`)")))
}

/// `ORT_DYLIB_PATH`, `FACEREC_DETECTOR_MODEL` and `FACEREC_EMBEDDER_MODEL`,
/// with `threads` intra-op threads per session.
pub fn pipeline_config_from_env(threads: usize) -> PipelineConfig {
    PipelineConfig {
        runtime_library: env_path("ORT_DYLIB_PATH"),
        detector_model: env_path("FACEREC_DETECTOR_MODEL"),
        embedder_model: env_path("FACEREC_EMBEDDER_MODEL"),
        detector: DetectorChoice::YuNet(YuNetConfig { intra_threads: threads, ..YuNetConfig::default() }),
        intra_threads: threads,
        // As the worker runs it by default.
        embed_batch: 1,
        shared_embed_batch: 0,
        shared_embed_wait: std::time::Duration::from_millis(2),
    }
}

/// As [`pipeline_config_from_env`], with CenterFace (`FACEREC_CENTERFACE_MODEL`) as the detector.
pub fn centerface_config_from_env(threads: usize) -> PipelineConfig {
    PipelineConfig {
        detector_model: env_path("FACEREC_CENTERFACE_MODEL"),
        detector: DetectorChoice::CenterFace(CenterFaceConfig {
            intra_threads: threads,
            ..CenterFaceConfig::default()
        }),
        ..pipeline_config_from_env(threads)
    }
}

/// Every JPEG and PNG under `FACEREC_PHOTOS_DIR`, sorted.
pub fn test_photos() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e} (run `make test`)", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "jpg" || e == "png") {
                out.push(path);
            }
        }
    }
    let mut photos = Vec::new();
    walk(&env_path("FACEREC_PHOTOS_DIR"), &mut photos);
    photos.sort();
    photos
}
