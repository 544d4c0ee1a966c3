//! The rewritten SFace (`scripts/onnx_dynamic.py --embedder`: weights out of
//! the graph inputs, free batch dimension, PRelu as Relu arithmetic) computes
//! the published model's function: on every face of the test photos both give
//! the same embedding within float rounding.

#[path = "../examples/common/mod.rs"]
mod common;

use facerec_vision::{DecodeLimits, FacePipeline, PipelineConfig, decode_image};

/// Cosine similarity of two L2-normalised embeddings.
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn rewritten_embedder_matches_the_published_model() {
    let fast = common::env_path("FACEREC_EMBEDDER_MODEL");
    let published = common::env_path("FACEREC_REFERENCE_EMBEDDER_MODEL");
    assert_ne!(
        std::fs::read(&fast).unwrap(),
        std::fs::read(&published).unwrap(),
        "the two files must differ, or this test compares a model with itself"
    );
    let mut rewritten = FacePipeline::load(&common::pipeline_config_from_env(1)).unwrap();
    let mut original =
        FacePipeline::load(&PipelineConfig { embedder_model: published, ..common::pipeline_config_from_env(1) })
            .unwrap();
    let photos = common::env_path("FACEREC_PHOTOS_DIR");
    let mut compared = 0;
    let mut worst = (1.0f32, 0.0f32);
    for path in jpegs(&photos) {
        let image = decode_image(&std::fs::read(&path).unwrap(), DecodeLimits::default()).unwrap();
        for face in rewritten.detect(&image).unwrap() {
            let crop = rewritten.align(&image, &face);
            let (a, b) = (rewritten.embed_aligned(&crop).unwrap(), original.embed_aligned(&crop).unwrap());
            let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
            worst = (worst.0.min(cosine(&a, &b)), worst.1.max(diff));
            compared += 1;
        }
    }
    assert!(compared >= 10, "only {compared} faces in {}", photos.display());
    eprintln!("{compared} faces: lowest cosine {}, largest difference {}", worst.0, worst.1);
    assert!(worst.0 >= 0.99999, "lowest cosine {} over {compared} faces", worst.0);
    assert!(worst.1 <= 1e-5, "largest element difference {} over {compared} faces", worst.1);
}

/// Every JPEG under `dir`, in subfolders too (group photos, one folder per person).
fn jpegs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(jpegs(&path));
        } else if path.extension().is_some_and(|e| e == "jpg") {
            found.push(path);
        }
    }
    found.sort();
    found
}

#[test]
fn a_photos_faces_embedded_together_equal_one_by_one() {
    let config = PipelineConfig { embed_batch: 4, ..common::pipeline_config_from_env(1) };
    let mut pipeline = FacePipeline::load(&config).unwrap();
    let photos = common::env_path("FACEREC_PHOTOS_DIR");
    let mut batches = 0;
    for path in jpegs(&photos) {
        let image = decode_image(&std::fs::read(&path).unwrap(), DecodeLimits::default()).unwrap();
        let crops: Vec<_> = pipeline.detect(&image).unwrap().iter().map(|f| pipeline.align(&image, f)).collect();
        if crops.len() < 2 {
            continue;
        }
        let together = pipeline.embed_aligned_batch(&crops).unwrap();
        assert_eq!(together.len(), crops.len(), "{}", path.display());
        for (i, (crop, batched)) in crops.iter().zip(&together).enumerate() {
            let alone = pipeline.embed_aligned(crop).unwrap();
            let diff = alone.iter().zip(batched).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
            assert!(diff <= 1e-5, "{} face {i}: batched differs from alone by {diff}", path.display());
        }
        batches += 1;
    }
    assert!(batches >= 1, "no photo with several faces in {}", photos.display());
    assert!(pipeline.embed_aligned_batch(&[]).unwrap().is_empty());
}
