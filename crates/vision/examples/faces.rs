//! Prints every face in the given photos as JSON lines (box, landmarks, score,
//! embedding), in the format of `tests/reference/opencv_reference.py`, so the
//! two pipelines can be compared face by face, plus each face's quality.
//!
//! `cargo run -p facerec-vision --example faces -- PHOTO...` (model paths from
//! `ORT_DYLIB_PATH`, `FACEREC_DETECTOR_MODEL`, `FACEREC_EMBEDDER_MODEL`).

mod common;

use facerec_vision::{DecodeLimits, FacePipeline, decode_image, measure_quality};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut pipeline = FacePipeline::load(&common::pipeline_config_from_env(1))?;
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path)?;
        let image = decode_image(&bytes, DecodeLimits::default())?;
        let faces = pipeline.detect(&image)?;
        for face in &faces {
            let crop = pipeline.align(&image, face);
            let quality = measure_quality(&image, face, &crop);
            let embedding = pipeline.embed_aligned(&crop)?;
            let b = face.bbox;
            println!(
                "{{\"photo\":{:?},\"bbox\":[{},{},{},{}],\"landmarks\":{:?},\"score\":{},\"quality\":{},\"embedding\":{:?}}}",
                path.rsplit('/').next().unwrap_or(&path),
                b.x,
                b.y,
                b.width,
                b.height,
                face.landmarks,
                face.score,
                serde_json::to_string(&quality)?,
                embedding
            );
        }
    }
    Ok(())
}
