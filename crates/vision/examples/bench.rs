//! Per-stage timing of the vision pipeline over photos, repeated: decode,
//! detect (resize + YuNet + decoding), and per face: align, quality, embed.
//!
//! `cargo run --release -p facerec-vision --example bench -- [--threads N] [--rounds R] [--centerface] PHOTO...`
//! (paths from `ORT_DYLIB_PATH`, `FACEREC_DETECTOR_MODEL`, `FACEREC_EMBEDDER_MODEL`;
//! `make bench` runs it on the test photos).

mod common;

use std::time::{Duration, Instant};

use facerec_vision::{DecodeLimits, FacePipeline, PipelineConfig, decode_image, measure_quality};

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let n = samples.len().max(1);
    let mean = samples.iter().sum::<Duration>() / n as u32;
    let pct = |p: usize| samples.get((samples.len() * p / 100).min(samples.len().saturating_sub(1))).copied();
    println!(
        "{name:<14} n={:<4} mean={:>8.2} ms  p50={:>8.2} ms  p95={:>8.2} ms",
        samples.len(),
        mean.as_secs_f64() * 1e3,
        pct(50).unwrap_or_default().as_secs_f64() * 1e3,
        pct(95).unwrap_or_default().as_secs_f64() * 1e3,
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take = |flag: &str, default: usize| -> usize {
        match args.iter().position(|a| a == flag) {
            Some(i) if i + 1 < args.len() => {
                let v = args.remove(i + 1);
                args.remove(i);
                v.parse().expect("a number")
            }
            _ => default,
        }
    };
    let threads = take("--threads", 1);
    let rounds = take("--rounds", 10);
    let centerface = args.iter().position(|a| a == "--centerface").map(|i| args.remove(i)).is_some();
    let config = if centerface {
        common::centerface_config_from_env(threads)
    } else {
        common::pipeline_config_from_env(threads)
    };
    // Single crops run alone whatever the batch; the batched line runs a photo's faces together.
    let mut pipeline = FacePipeline::load(&PipelineConfig { embed_batch: 32, ..config })?;
    let photos: Vec<(String, Vec<u8>)> =
        args.iter().map(|p| Ok((p.clone(), std::fs::read(p)?))).collect::<std::io::Result<_>>()?;
    let (mut decode, mut detect) = (Vec::new(), Vec::new());
    let (mut align, mut quality, mut embed) = (Vec::new(), Vec::new(), Vec::new());
    let mut embed_batched = Vec::new();
    for round in 0..=rounds {
        for (_, bytes) in &photos {
            let t0 = Instant::now();
            let image = decode_image(bytes, DecodeLimits::default())?;
            let t1 = Instant::now();
            let faces = pipeline.detect(&image)?;
            let t2 = Instant::now();
            let mut per_face = Vec::new();
            let mut crops = Vec::new();
            for face in &faces {
                let t = Instant::now();
                let crop = pipeline.align(&image, face);
                let ta = Instant::now();
                measure_quality(&image, face, &crop);
                let tq = Instant::now();
                pipeline.embed_aligned(&crop)?;
                per_face.push((ta - t, tq - ta, tq.elapsed()));
                crops.push(crop);
            }
            // The same faces in one run, as recognize embeds them: time per face.
            let tb = Instant::now();
            pipeline.embed_aligned_batch(&crops)?;
            let per_face_batched = tb.elapsed().checked_div(crops.len().max(1) as u32).unwrap_or_default();
            if round > 0 {
                // Round 0 warms the sessions up and is not counted.
                decode.push(t1 - t0);
                detect.push(t2 - t1);
                for (a, q, e) in per_face {
                    align.push(a);
                    quality.push(q);
                    embed.push(e);
                    embed_batched.push(per_face_batched);
                }
            }
        }
    }
    println!("{} photos x {rounds} rounds, {threads} intra-op thread(s), {}", photos.len(), pipeline.model_id());
    summary("decode", decode);
    summary("detect", detect);
    summary("align", align);
    summary("quality", quality);
    summary("embed", embed);
    summary("embed, a photo's faces in one run (per face)", embed_batched);
    Ok(())
}
