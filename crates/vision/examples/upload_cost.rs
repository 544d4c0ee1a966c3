//! What the costliest uploads cost a worker: decode (and, with `--detect`,
//! detection) time of generated images, with `FACEREC_MAX_PIXELS_PER_BYTE`
//! at its default and turned off. The cases: the two cheap images of issue 29
//! (6000x6000 zeros, 40 megapixels of 16-bit zeros), the free allowance
//! (4 megapixels of zeros, a few kilobytes) and the worst image the default
//! still accepts (40 megapixels padded with noise to just over 50 pixels per byte).
//!
//! `cargo run --release -p facerec-vision --example upload_cost -- [--detect] [--rounds R]`
//! (`--detect` reads `ORT_DYLIB_PATH` and `FACEREC_DETECTOR_MODEL`, `FACEREC_EMBEDDER_MODEL`).

mod common;

use std::io::Cursor;
use std::time::Instant;

use facerec_core::{DEFAULT_MAX_PIXELS, DEFAULT_MAX_PIXELS_PER_BYTE, ImageLimits};
use facerec_vision::{DecodeLimits, FacePipeline, decode_image};
use image::{DynamicImage, GrayImage, ImageFormat, ImageReader};

fn png(image: DynamicImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png).expect("encode PNG");
    out.into_inner()
}

/// 8000x5000 zeros whose first `noisy` pixels are noise (xorshift), which
/// deflate cannot shrink: a file of just over `noisy` bytes.
fn padded(noisy: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut image = GrayImage::new(8000, 5000);
    for p in image.iter_mut().take(noisy) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *p = state as u8;
    }
    png(DynamicImage::ImageLuma8(image))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: u32 =
        args.iter().position(|a| a == "--rounds").and_then(|i| args.get(i + 1)).map_or(Ok(3), |r| r.parse())?;
    let mut pipeline = if args.iter().any(|a| a == "--detect") {
        Some(FacePipeline::load(&common::pipeline_config_from_env(1))?)
    } else {
        None
    };
    // The default's largest image in a file just large enough for the default's pixels per byte.
    let worst = (DEFAULT_MAX_PIXELS / DEFAULT_MAX_PIXELS_PER_BYTE) as usize + 10_000;
    let cases = [
        ("6000x6000 zeros (issue 29)", png(DynamicImage::new_luma8(6000, 6000))),
        ("40 Mpx 16-bit zeros (issue 29)", png(DynamicImage::new_luma16(8000, 5000))),
        ("4 Mpx zeros (free allowance)", png(DynamicImage::new_luma8(2000, 2000))),
        ("40 Mpx at 50 px/byte (worst accepted)", padded(worst)),
    ];
    let unchecked = ImageLimits { max_pixels_per_byte: 0, ..ImageLimits::default() };
    let unchecked = DecodeLimits { image: unchecked, ..DecodeLimits::default() };
    println!("{:<40} {:>9} {:>10} {:>12} {:>12}", "image", "KB", "px/byte", "default", "unchecked");
    for (name, bytes) in &cases {
        let mut cells = Vec::new();
        for limits in [DecodeLimits::default(), unchecked] {
            let start = Instant::now();
            let mut outcome = String::new();
            for _ in 0..rounds {
                outcome = match decode_image(bytes, limits) {
                    Ok(image) => match pipeline.as_mut() {
                        Some(p) => format!("{} faces", p.detect(&image)?.len()),
                        None => "decoded".into(),
                    },
                    Err(e) => format!("refused ({})", if e.is_bad_input() { "bad input" } else { "error" }),
                };
            }
            let ms = start.elapsed().as_secs_f64() * 1e3 / f64::from(rounds);
            cells.push(format!("{ms:>8.1} ms {outcome}"));
        }
        let (width, height) = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?.into_dimensions()?;
        let per_byte = f64::from(width) * f64::from(height) / bytes.len() as f64;
        println!("{name:<40} {:>9.1} {per_byte:>10.0}  {}  {}", bytes.len() as f64 / 1e3, cells[0], cells[1]);
    }
    Ok(())
}
