//! Our pipeline against OpenCV's own for these models (`cv2.FaceDetectorYN` +
//! `cv2.FaceRecognizerSF`, run by `tests/reference/opencv_reference.py` in the
//! venv `scripts/setup.sh --with-test-photos` makes) on every test photo: the
//! same faces, boxes within IoU 0.9, embeddings within cosine 0.99.

#[path = "../examples/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use facerec_core::BBox;
use facerec_vision::{DecodeLimits, FacePipeline, decode_image};
use serde_json::Value;

const MIN_IOU: f32 = 0.9;
const MIN_COSINE: f32 = 0.99;

struct Face {
    bbox: BBox,
    embedding: Vec<f32>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reference_faces(photos: &[PathBuf]) -> Vec<(String, Face)> {
    let python = std::env::var("FACEREC_REFERENCE_PYTHON")
        .unwrap_or_else(|_| repo_root().join(".cache/refvenv/bin/python").display().to_string());
    let output = Command::new(&python)
        .arg(repo_root().join("tests/reference/opencv_reference.py"))
        .arg(common::env_path("FACEREC_REFERENCE_DETECTOR_MODEL"))
        .arg(common::env_path("FACEREC_REFERENCE_EMBEDDER_MODEL"))
        .args(photos)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (run `make test`, which creates the reference venv): {e}"));
    assert!(output.status.success(), "reference failed: {}", String::from_utf8_lossy(&output.stderr));
    let floats = |v: &Value| -> Vec<f32> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect() };
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let b = floats(&v["bbox"]);
            let face =
                Face { bbox: BBox { x: b[0], y: b[1], width: b[2], height: b[3] }, embedding: floats(&v["embedding"]) };
            (v["photo"].as_str().unwrap().to_owned(), face)
        })
        .collect()
}

fn our_faces(pipeline: &mut FacePipeline, photo: &Path) -> Vec<Face> {
    let image = decode_image(&std::fs::read(photo).unwrap(), DecodeLimits::default()).unwrap();
    let detections = pipeline.detect(&image).unwrap();
    detections.iter().map(|d| Face { bbox: d.bbox, embedding: pipeline.embed(&image, d).unwrap() }).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn faces_boxes_and_embeddings_match_opencv() {
    let photos = common::test_photos();
    assert!(photos.len() >= 10, "too few test photos in {photos:?}: run `make test`");
    let reference = reference_faces(&photos);
    let mut pipeline = FacePipeline::load(&common::pipeline_config_from_env(1)).unwrap();
    let (mut cosines, mut ious, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for photo in &photos {
        let key = photo.display().to_string();
        let theirs: Vec<&Face> = reference.iter().filter(|(p, _)| *p == key).map(|(_, f)| f).collect();
        let ours = our_faces(&mut pipeline, photo);
        if ours.len() != theirs.len() {
            failures.push(format!("{key}: {} faces, reference {}", ours.len(), theirs.len()));
            continue;
        }
        for t in theirs {
            let best = ours.iter().max_by(|a, b| a.bbox.iou(&t.bbox).total_cmp(&b.bbox.iou(&t.bbox))).unwrap();
            let (iou, cos) = (best.bbox.iou(&t.bbox), cosine(&best.embedding, &t.embedding));
            if iou < MIN_IOU || cos < MIN_COSINE {
                failures.push(format!("{key}: IoU {iou:.4}, cosine {cos:.5}"));
            }
            ious.push(iou);
            cosines.push(cos);
        }
    }
    let stats = |v: &[f32]| (v.iter().sum::<f32>() / v.len() as f32, v.iter().copied().fold(f32::INFINITY, f32::min));
    let ((mean_cos, min_cos), (mean_iou, min_iou)) = (stats(&cosines), stats(&ious));
    println!(
        "reference agreement over {} photos, {} faces: cosine mean {mean_cos:.6} min {min_cos:.6}; IoU mean {mean_iou:.5} min {min_iou:.5}",
        photos.len(),
        cosines.len()
    );
    assert!(failures.is_empty(), "disagreements with OpenCV:\n{}", failures.join("\n"));
    assert!(cosines.len() >= photos.len(), "expected at least one face per photo, got {}", cosines.len());
}
