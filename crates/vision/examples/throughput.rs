//! The ceiling for ingestion: images per second through the register
//! pipeline alone (decode, detect, align, quality, embed the largest face),
//! with no HTTP, queue or database, on `--concurrency` threads each with its
//! own pipeline, as a worker runs them. `--all-faces` embeds every face, as
//! recognize does; `--shared-batch N` (with `--shared-wait-ms W`, default 2)
//! lets the pipelines share one embedder that runs faces of concurrent photos
//! together (`FACEREC_SHARED_EMBED_BATCH`).
//!
//! `cargo run --release -p facerec-vision --example throughput -- [--concurrency C] [--all-faces] [--shared-batch N] PHOTO...`
//! Prints one line: `pipeline: N images in S s = R images/s (C pipelines x T intra-op threads)`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use facerec_vision::{DecodeLimits, FacePipeline, PipelineConfig, decode_image, measure_quality};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take = |flag: &str, default: usize| -> Result<usize, std::num::ParseIntError> {
        match args.iter().position(|a| a == flag) {
            Some(i) => {
                let v = args.remove(i + 1);
                args.remove(i);
                v.parse()
            }
            None => Ok(default),
        }
    };
    let concurrency = take("--concurrency", 1)?.max(1);
    let shared_batch = take("--shared-batch", 0)?;
    let shared_wait_ms = take("--shared-wait-ms", 2)?;
    let all_faces = args.iter().position(|a| a == "--all-faces").map(|i| args.remove(i)).is_some();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / concurrency).max(1);
    let photos: Vec<Vec<u8>> = args.iter().map(std::fs::read).collect::<std::io::Result<_>>()?;
    let config = PipelineConfig {
        shared_embed_batch: shared_batch,
        shared_embed_wait: Duration::from_millis(shared_wait_ms as u64),
        ..common::pipeline_config_from_env(threads)
    };
    let pipelines = FacePipeline::load_many(&config, concurrency)?;
    let (next, faces_embedded) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for mut pipeline in pipelines {
            let (photos, next, faces_embedded) = (&photos, &next, &faces_embedded);
            scope.spawn(move || {
                while let Some(bytes) = photos.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let Ok(image) = decode_image(bytes, DecodeLimits::default()) else { continue };
                    // Largest first.
                    let Ok(faces) = pipeline.detect(&image) else { continue };
                    let faces = if all_faces { &faces[..] } else { &faces[..faces.len().min(1)] };
                    let crops: Vec<_> = faces
                        .iter()
                        .map(|face| {
                            let crop = pipeline.align(&image, face);
                            measure_quality(&image, face, &crop);
                            crop
                        })
                        .collect();
                    if let Ok(e) = pipeline.embed_aligned_batch(&crops) {
                        faces_embedded.fetch_add(e.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let shared = if shared_batch > 0 { format!(", shared embedder batch {shared_batch}") } else { String::new() };
    println!(
        "pipeline: {} images in {secs:.2} s = {:.1} images/s ({concurrency} pipelines x {threads} intra-op threads{shared}; {} faces embedded)",
        photos.len(),
        photos.len() as f64 / secs,
        faces_embedded.load(Ordering::Relaxed)
    );
    Ok(())
}
