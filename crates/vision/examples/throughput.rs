//! The ceiling for ingestion: images per second through the register
//! pipeline alone (decode, detect, align, quality, embed the largest face),
//! with no HTTP, queue or database, on `--concurrency` threads each with its
//! own pipeline, as a worker runs them.
//!
//! `cargo run --release -p facerec-vision --example throughput -- [--concurrency C] PHOTO...`
//! Prints one line: `pipeline: N images in S s = R images/s (C pipelines x T intra-op threads)`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use facerec_vision::{DecodeLimits, FacePipeline, decode_image, measure_quality};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let concurrency = match args.iter().position(|a| a == "--concurrency") {
        Some(i) => {
            let v = args.remove(i + 1);
            args.remove(i);
            v.parse()?
        }
        None => 1usize,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / concurrency.max(1)).max(1);
    let photos: Vec<Vec<u8>> = args.iter().map(std::fs::read).collect::<std::io::Result<_>>()?;
    let pipelines: Vec<FacePipeline> = (0..concurrency)
        .map(|_| FacePipeline::load(&common::pipeline_config_from_env(threads)))
        .collect::<Result<_, _>>()?;
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for mut pipeline in pipelines {
            let (photos, next) = (&photos, &next);
            scope.spawn(move || {
                while let Some(bytes) = photos.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let Ok(image) = decode_image(bytes, DecodeLimits::default()) else { continue };
                    let Ok(faces) = pipeline.detect(&image) else { continue };
                    let area = |d: &facerec_vision::Detection| d.bbox.width * d.bbox.height;
                    let largest = faces.iter().max_by(|a, b| area(a).total_cmp(&area(b)));
                    if let Some(face) = largest {
                        let crop = pipeline.align(&image, face);
                        measure_quality(&image, face, &crop);
                        let _ = pipeline.embed_aligned(&crop);
                    }
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "pipeline: {} images in {secs:.2} s = {:.1} images/s ({concurrency} pipelines x {threads} intra-op threads)",
        photos.len(),
        photos.len() as f64 / secs
    );
    Ok(())
}
