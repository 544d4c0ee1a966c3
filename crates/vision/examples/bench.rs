//! Per-stage timing of the vision pipeline over photos, repeated: decode,
//! detect (resize + YuNet + decoding), align + embed (per face).
//!
//! `cargo run --release -p facerec-vision --example bench -- [--threads N] [--rounds R] PHOTO...`
//! (paths from `ORT_DYLIB_PATH`, `FACEREC_DETECTOR_MODEL`, `FACEREC_EMBEDDER_MODEL`;
//! `make bench` runs it on the test photos).

mod common;

use std::time::{Duration, Instant};

use facerec_vision::{DecodeLimits, FacePipeline, decode_image};

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
    let mut pipeline = FacePipeline::load(&common::pipeline_config_from_env(threads))?;
    let photos: Vec<(String, Vec<u8>)> =
        args.iter().map(|p| Ok((p.clone(), std::fs::read(p)?))).collect::<std::io::Result<_>>()?;
    let (mut decode, mut detect, mut embed) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..=rounds {
        for (_, bytes) in &photos {
            let t0 = Instant::now();
            let image = decode_image(bytes, DecodeLimits::default())?;
            let t1 = Instant::now();
            let faces = pipeline.detect(&image)?;
            let t2 = Instant::now();
            let mut per_face = Vec::new();
            for face in &faces {
                let t = Instant::now();
                pipeline.embed(&image, face)?;
                per_face.push(t.elapsed());
            }
            if round > 0 {
                // Round 0 warms the sessions up and is not counted.
                decode.push(t1 - t0);
                detect.push(t2 - t1);
                embed.extend(per_face);
            }
        }
    }
    println!("{} photos x {rounds} rounds, {threads} intra-op thread(s)", photos.len());
    summary("decode", decode);
    summary("detect", detect);
    summary("align+embed", embed);
    Ok(())
}
