//! Prints every face in the given photos as JSON lines (box, landmarks, score,
//! embedding), in the format of `tests/reference/opencv_reference.py`, so the
//! two pipelines can be compared face by face.
//!
//! `cargo run -p facerec-vision --example faces -- PHOTO...` (model paths from
//! `ORT_DYLIB_PATH`, `FACEREC_DETECTOR_MODEL`, `FACEREC_EMBEDDER_MODEL`).

use std::path::PathBuf;
use std::time::Instant;

use facerec_vision::{DecodeLimits, FacePipeline, PipelineConfig, YuNetConfig, decode_image};

fn env_path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var(name).unwrap_or_else(|_| panic!("set {name}")))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = PipelineConfig {
        runtime_library: env_path("ORT_DYLIB_PATH"),
        detector_model: env_path("FACEREC_DETECTOR_MODEL"),
        embedder_model: env_path("FACEREC_EMBEDDER_MODEL"),
        detector: YuNetConfig::default(),
        intra_threads: 1,
    };
    let mut pipeline = FacePipeline::load(&config)?;
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path)?;
        let t0 = Instant::now();
        let image = decode_image(&bytes, DecodeLimits::default())?;
        let t1 = Instant::now();
        let faces = pipeline.detect(&image)?;
        let t2 = Instant::now();
        for face in &faces {
            let embedding = pipeline.embed(&image, face)?;
            let b = face.bbox;
            println!(
                "{{\"photo\":{:?},\"bbox\":[{},{},{},{}],\"landmarks\":{:?},\"score\":{},\"embedding\":{:?}}}",
                path.rsplit('/').next().unwrap_or(&path),
                b.x,
                b.y,
                b.width,
                b.height,
                face.landmarks,
                face.score,
                embedding
            );
        }
        let t3 = Instant::now();
        eprintln!(
            "{path}: {}x{} decode {:?} detect {:?} embed {:?} ({} faces)",
            image.width(),
            image.height(),
            t1 - t0,
            t2 - t1,
            t3 - t2,
            faces.len()
        );
    }
    Ok(())
}
