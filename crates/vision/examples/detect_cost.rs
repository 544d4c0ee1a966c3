//! What detection costs with each YuNet setting: per photo, faces found and
//! the mean time of one detection, for each `MAX_SIDE:MIN_FACE` given
//! (`100000:0` is the photo's own size alone, as OpenCV's pipeline runs it;
//! `640:0` the coarse level alone; `640:24` the default).
//!
//! `cargo run --release -p facerec-vision --example detect_cost -- [--threads N] [--rounds R] [--configs 640:24,100000:0] PHOTO...`

mod common;

use std::time::Instant;

use facerec_vision::{DecodeLimits, YuNet, YuNetConfig, decode_image, init_runtime};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take = |flag: &str, default: &str| -> String {
        match args.iter().position(|a| a == flag) {
            Some(i) if i + 1 < args.len() => {
                let v = args.remove(i + 1);
                args.remove(i);
                v
            }
            _ => default.to_owned(),
        }
    };
    let threads: usize = take("--threads", "1").parse()?;
    let rounds: usize = take("--rounds", "5").parse()?;
    let configs = take("--configs", "640:0,640:24,100000:0");
    let env = init_runtime(&common::env_path("ORT_DYLIB_PATH"))?;
    let model = common::env_path("FACEREC_DETECTOR_MODEL");
    for config in configs.split(',') {
        let (side, min_face) = config.split_once(':').ok_or("configs are MAX_SIDE:MIN_FACE")?;
        let (side, min_face): (u32, u32) = (side.parse()?, min_face.parse()?);
        let config = YuNetConfig { max_side: side, min_face, intra_threads: threads, ..YuNetConfig::default() };
        let mut detector = YuNet::load(&env, &model, config)?;
        for photo in &args {
            let image = decode_image(&std::fs::read(photo)?, DecodeLimits::default())?;
            let found = facerec_vision::Detector::detect(&mut detector, &image)?;
            if std::env::var("SHOW").is_ok() {
                found.iter().for_each(|f| println!("  {:?} {:?} {}", f.bbox, f.landmarks[0], f.score));
            }
            let faces = found.len();
            let start = Instant::now();
            for _ in 0..rounds {
                facerec_vision::Detector::detect(&mut detector, &image)?;
            }
            let ms = start.elapsed().as_secs_f64() * 1e3 / rounds as f64;
            println!(
                "{side:>6}:{min_face:<3} {:>5}x{:<5} {faces:>3} faces {ms:>8.1} ms  {photo}",
                image.width(),
                image.height()
            );
        }
    }
    Ok(())
}
