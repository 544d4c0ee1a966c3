//! Time one search of an in-memory index of N random faces, by stage:
//! `cargo run --release -p facerec-face-index --example search_cost -- 1000000`.

use std::time::Instant;

use facerec_face_index::{FaceIndex, FaceRef, shortlist_for};
use uuid::Uuid;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut index = FaceIndex::new(vec![0.0; 128]);
    let started = Instant::now();
    for i in 0..n {
        let v: Vec<f32> = (0..128).map(|_| next()).collect();
        index.insert(FaceRef { id: Uuid::from_u128(i as u128), subject: Uuid::from_u128(i as u128 / 5) }, &v).unwrap();
    }
    println!("{n} faces inserted in {:.2} s", started.elapsed().as_secs_f64());
    let queries: Vec<Vec<f32>> = (0..300).map(|_| (0..128).map(|_| next()).collect()).collect();
    let shortlist = shortlist_for(n);
    for (label, shortlist) in [("codes only (shortlist 40)", 40), ("full search", shortlist)] {
        let mut ms: Vec<f64> = queries
            .iter()
            .map(|q| {
                let started = Instant::now();
                std::hint::black_box(index.search(q, shortlist, 40).unwrap());
                started.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        let at = |p: f64| ms[((ms.len() - 1) as f64 * p) as usize];
        println!("{label}: p50 {:.2} ms, p99 {:.2} ms per search", at(0.5), at(0.99));
    }
}
