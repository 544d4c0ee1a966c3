//! ONNX Runtime's own per-operator profile of the embedder: runs the model
//! on a face crop `--runs` times (1 thread, full graph optimisation, as the
//! worker does) with profiling on, then sums the profile's node events by
//! operator type: milliseconds per face and share of the model's time.
//!
//! `cargo run --release -p facerec-vision --example profile_embedder -- [--runs 200] [--input WxH] [MODEL.onnx]`
//! (default model: `FACEREC_EMBEDDER_MODEL`; the raw profile is left in the
//! system's temp folder and its path printed).

mod common;

use std::collections::BTreeMap;

use facerec_vision::{DecodeLimits, FacePipeline, decode_image, init_runtime};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = match args.iter().position(|a| a == "--runs") {
        Some(i) => {
            let v = args.remove(i + 1);
            args.remove(i);
            v.parse()?
        }
        None => 200,
    };
    // `--input WxH`: a blank input of that size instead of a face crop (e.g. to profile the detector).
    let blank: Option<(usize, usize)> = match args.iter().position(|a| a == "--input") {
        Some(i) => {
            let v = args.remove(i + 1);
            args.remove(i);
            let (w, h) = v.split_once('x').ok_or("--input is WxH")?;
            Some((w.parse()?, h.parse()?))
        }
        None => None,
    };
    let model = args.first().map(Into::into).unwrap_or_else(|| common::env_path("FACEREC_EMBEDDER_MODEL"));
    // A real aligned face: the first test portrait's.
    let mut pipeline = FacePipeline::load(&common::pipeline_config_from_env(1))?;
    let photo = common::env_path("FACEREC_PHOTOS_DIR").join("obama.jpg");
    let image = decode_image(&std::fs::read(photo)?, DecodeLimits::default())?;
    let face = pipeline.detect(&image)?.into_iter().next().ok_or("no face in obama.jpg")?;
    let crop = pipeline.align(&image, &face);
    let (w, h) = blank.unwrap_or((112, 112));
    let mut input = ndarray::Array4::<f32>::zeros((1, 3, h, w));
    for (x, y, p) in crop.enumerate_pixels().filter(|_| blank.is_none()) {
        for c in 0..3 {
            input[[0, c, y as usize, x as usize]] = f32::from(p[c]);
        }
    }

    let env = init_runtime(&common::env_path("ORT_DYLIB_PATH"))?;
    let prefix = std::env::temp_dir().join("facerec-embedder-profile");
    let mut session = Session::builder(&env)?
        .with_optimization_level(GraphOptimizationLevel::All)?
        .with_intra_threads(1)?
        .with_profiling(&prefix)?
        .commit_from_file(&model)?;
    let name = session.inputs()[0].name().to_owned();
    for _ in 0..runs {
        let tensor = TensorRef::from_array_view(&input)?;
        session.run(ort::inputs![name.as_str() => tensor])?;
    }
    let path = session.end_profiling()?;
    let events: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let mut by_op: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut model_us = 0.0;
    for e in events.as_array().ok_or("the profile is not a JSON array")? {
        let dur = e["dur"].as_f64().unwrap_or(0.0);
        match e["cat"].as_str() {
            Some("Node") if e["name"].as_str().is_some_and(|n| n.ends_with("_kernel_time")) => {
                let op = e["args"]["op_name"].as_str().unwrap_or("?").to_owned();
                let entry = by_op.entry(op).or_default();
                entry.0 += dur;
                entry.1 += 1;
            }
            Some("Session") if e["name"] == "model_run" => model_us += dur,
            _ => {}
        }
    }
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    println!("{} runs of {}: {:.2} ms per run (model_run)", runs, model.display(), model_us / runs as f64 / 1e3);
    for (op, (us, n)) in ops {
        println!(
            "{op:<24} {:>7.2} ms per run  {:>5.1} %  {:>4} nodes",
            us / runs as f64 / 1e3,
            100.0 * us / model_us.max(1.0),
            n / runs
        );
    }
    println!("profile: {path}");
    Ok(())
}
