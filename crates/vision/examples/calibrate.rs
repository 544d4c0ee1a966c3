//! Threshold calibration: embeds every labelled test photo (largest face) and
//! prints same-person and different-person cosine similarities, and the false
//! accept / false reject rates of candidate thresholds.
//!
//! Labels: `johns/<Name>/*.jpg` (dlib's five Johns) by folder, and the
//! face_recognition photos by file name (`obama*`, `biden*`).
//! `cargo run --release -p facerec-vision --example calibrate` (after `make test`
//! fetched the photos; paths from `scripts/env.sh`).

mod common;

use facerec_vision::{DecodeLimits, FacePipeline, decode_image};

fn label(path: &std::path::Path) -> Option<String> {
    let parent = path.parent()?.file_name()?.to_str()?;
    let stem = path.file_stem()?.to_str()?;
    if parent.starts_with("John_") {
        return Some(parent.to_owned());
    }
    ["obama", "biden"].into_iter().find(|p| stem.starts_with(p)).map(str::to_owned)
}

fn stats(name: &str, v: &mut [f32]) {
    v.sort_by(f32::total_cmp);
    let pct = |p: f32| v[((v.len() - 1) as f32 * p).round() as usize];
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    println!(
        "{name:<10} pairs={:<5} min={:.3} p1={:.3} p5={:.3} mean={mean:.3} p95={:.3} p99={:.3} max={:.3}",
        v.len(),
        v[0],
        pct(0.01),
        pct(0.05),
        pct(0.95),
        pct(0.99),
        v[v.len() - 1]
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut pipeline = FacePipeline::load(&common::pipeline_config_from_env(1))?;
    let mut people: Vec<(String, Vec<f32>)> = Vec::new();
    for path in common::test_photos() {
        let Some(label) = label(&path) else { continue };
        let image = decode_image(&std::fs::read(&path)?, DecodeLimits::default())?;
        let Some(face) = pipeline.detect(&image)?.into_iter().next() else {
            println!("no face in {}", path.display());
            continue;
        };
        people.push((label, pipeline.embed(&image, &face)?));
    }
    let (mut same, mut different) = (Vec::new(), Vec::new());
    for (i, (a, ea)) in people.iter().enumerate() {
        for (b, eb) in &people[i + 1..] {
            let cosine: f32 = ea.iter().zip(eb).map(|(x, y)| x * y).sum();
            if a == b { same.push(cosine) } else { different.push(cosine) }
        }
    }
    let identities: std::collections::BTreeSet<&str> = people.iter().map(|(l, _)| l.as_str()).collect();
    println!("{} photos of {} people: {identities:?}", people.len(), identities.len());
    stats("same", &mut same);
    stats("different", &mut different);
    println!("threshold  false-accept  false-reject");
    for step in 0..=12 {
        let t = 0.20 + 0.025 * step as f32;
        let far = different.iter().filter(|&&s| s >= t).count() as f32 / different.len() as f32;
        let frr = same.iter().filter(|&&s| s < t).count() as f32 / same.len() as f32;
        println!("{t:>9.3}  {:>11.2}%  {:>11.2}%", far * 100.0, frr * 100.0);
    }
    Ok(())
}
