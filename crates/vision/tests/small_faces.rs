//! Small faces in a large photo: the labelled test portraits shrunk until their
//! faces are a given width and laid out on a 1920x1280 canvas
//! (`tests/reference/small_faces.py make`), the first portrait of each person
//! registered at its own size. Our pipeline must find and identify them as
//! well as OpenCV's own pipeline at the canvas's full size does
//! (`small_faces.py opencv`), under the same counting rule.
//!
//! Face widths: `FACEREC_SMALL_FACE_SIZES` (default 24,32,48); sizes below
//! [`GOAL_FROM`] are measured and printed, not asserted (`make small-faces`
//! prints the whole table from 12 px up).

#[path = "../examples/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use facerec_vision::{DecodeLimits, Detection, FacePipeline, decode_image};
use serde_json::Value;

/// Same as the script's THRESHOLD: the service's default recognize threshold.
const THRESHOLD: f32 = 0.4;
/// Faces at least this wide must do as well as OpenCV's pipeline.
const GOAL_FROM: u64 = 24;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Tally {
    faces: u64,
    found: u64,
    identified: u64,
    wrong: u64,
    extra: u64,
    inter_eye: f64,
}

impl Tally {
    fn from_json(v: &Value) -> Self {
        let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
        Self {
            faces: n("faces"),
            found: n("found"),
            identified: n("identified"),
            wrong: n("wrong"),
            extra: n("extra"),
            inter_eye: v["inter_eye"].as_f64().unwrap(),
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python(args: &[&str]) -> String {
    let python = std::env::var("FACEREC_REFERENCE_PYTHON")
        .unwrap_or_else(|_| repo_root().join(".cache/refvenv/bin/python").display().to_string());
    let output = Command::new(&python)
        .arg(repo_root().join("tests/reference/small_faces.py"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (run `make test`, which creates the reference venv): {e}"));
    assert!(output.status.success(), "small_faces.py {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn load(path: &Path) -> image::RgbImage {
    decode_image(&std::fs::read(path).unwrap(), DecodeLimits::default()).unwrap()
}

/// The counting rule of `small_faces.py score`, on our detections.
fn tally(pipeline: &mut FacePipeline, canvas: &Path, gallery: &[(String, Vec<f32>)]) -> Tally {
    let spec = read_json(&canvas.with_extension("json"));
    let cells = spec["cells"].as_array().unwrap();
    let image = load(canvas);
    let faces: Vec<Detection> = pipeline.detect(&image).unwrap();
    let mut t = Tally { faces: cells.len() as u64, ..Tally::default() };
    let mut taken = vec![false; cells.len()];
    let mut eyes = Vec::new();
    for face in &faces {
        let (cx, cy) = (face.bbox.x + face.bbox.width / 2.0, face.bbox.y + face.bbox.height / 2.0);
        let inside = |c: &Value| {
            let f = |k: &str| c[k].as_f64().unwrap() as f32;
            f("x") <= cx && cx <= f("x") + f("width") && f("y") <= cy && cy <= f("y") + f("height")
        };
        let Some(cell) = cells.iter().position(inside) else {
            t.extra += 1;
            continue;
        };
        if std::mem::replace(&mut taken[cell], true) {
            continue;
        }
        t.found += 1;
        let [l, r] = [face.landmarks[0], face.landmarks[1]];
        eyes.push(f64::from((r[0] - l[0]).hypot(r[1] - l[1])));
        let embedding = pipeline.embed(&image, face).unwrap();
        let sims = gallery.iter().map(|(_, g)| g.iter().zip(&embedding).map(|(a, b)| a * b).sum::<f32>());
        let (best, sim) = sims.enumerate().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
        if sim >= THRESHOLD {
            if gallery[best].0 == cells[cell]["subject"].as_str().unwrap() {
                t.identified += 1;
            } else {
                t.wrong += 1;
            }
        }
    }
    t.inter_eye = if eyes.is_empty() { 0.0 } else { eyes.iter().sum::<f64>() / eyes.len() as f64 };
    t
}

#[test]
fn small_faces_are_found_and_identified_like_opencv_at_full_size() {
    let sizes = std::env::var("FACEREC_SMALL_FACE_SIZES").unwrap_or_else(|_| "24,32,48".into());
    let sizes: Vec<u64> = sizes.split(',').map(|s| s.trim().parse().expect("sizes are pixel widths")).collect();
    let dir = std::env::temp_dir().join(format!("facerec-small-faces-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.display().to_string();
    let size_args: Vec<String> = sizes.iter().map(u64::to_string).collect();
    let mut make = vec!["make", out.as_str()];
    make.extend(size_args.iter().map(String::as_str));
    python(&make);
    let detector = common::env_path("FACEREC_REFERENCE_DETECTOR_MODEL").display().to_string();
    let embedder = common::env_path("FACEREC_REFERENCE_EMBEDDER_MODEL").display().to_string();
    let theirs: Vec<Tally> = python(&["opencv", &detector, &embedder, &out])
        .lines()
        .map(|l| Tally::from_json(&serde_json::from_str(l).unwrap()))
        .collect();

    let mut pipeline = FacePipeline::load(&common::pipeline_config_from_env(1)).unwrap();
    let gallery: Vec<(String, Vec<f32>)> = read_json(&dir.join("gallery.json"))
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let image = load(Path::new(g["path"].as_str().unwrap()));
            let faces = pipeline.detect(&image).unwrap();
            let face = faces.first().unwrap_or_else(|| panic!("no face in gallery photo {g}"));
            (g["subject"].as_str().unwrap().to_owned(), pipeline.embed(&image, face).unwrap())
        })
        .collect();

    let mut failures = Vec::new();
    println!("face px | faces | found ours/opencv | identified ours/opencv | wrong | extra | inter-eye px");
    for (size, theirs) in sizes.iter().zip(&theirs) {
        let ours = tally(&mut pipeline, &dir.join(format!("canvas_{size}.png")), &gallery);
        println!(
            "{size:>7} | {:>5} | {:>8}/{:<8} | {:>11}/{:<10} | {}/{} | {}/{} | {:.1}",
            ours.faces,
            ours.found,
            theirs.found,
            ours.identified,
            theirs.identified,
            ours.wrong,
            theirs.wrong,
            ours.extra,
            theirs.extra,
            ours.inter_eye
        );
        if *size >= GOAL_FROM
            && (ours.found < theirs.found.max(ours.faces)
                || ours.identified < theirs.identified
                || ours.wrong > theirs.wrong
                || ours.extra > theirs.extra)
        {
            failures.push(format!("{size} px: ours {ours:?}, OpenCV {theirs:?}"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "worse than OpenCV's pipeline on small faces:\n{}", failures.join("\n"));
}
