//! Runs probes through `Store::search_subjects`, the search recognize runs,
//! and prints each probe's answer and latency as JSON: the Rust half of
//! `scripts/search_bench.py --in-memory` (which makes the data and the
//! probes, and scores the answers against exact search).
//!
//! ```text
//! search_probe DATABASE_URL COLLECTION PROBES.f32 DIM TOP_K CLIENTS[,CLIENTS...]
//! ```
//! PROBES.f32 holds the probe vectors, little-endian f32, DIM per probe. One
//! warm-up pass (its first search loads the collection's in-memory index, and
//! is timed apart), then one pass per client count, each probe searched once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use facerec_core::CollectionName;
use facerec_store::{SearchHit, SearchSettings, Store};

const EMBEDDER: &str = "sface_2021dec";

type Answer = (f64, Vec<SearchHit>);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, collection, probes, dim, top_k, clients] = args.as_slice() else {
        return Err("usage: search_probe DATABASE_URL COLLECTION PROBES.f32 DIM TOP_K CLIENTS[,CLIENTS...]".into());
    };
    let collection = CollectionName::parse(collection)?;
    let dim: usize = dim.parse()?;
    let top_k: u32 = top_k.parse()?;
    let clients: Vec<usize> = clients.split(',').map(str::parse).collect::<Result<_, _>>()?;
    let bytes = std::fs::read(probes)?;
    let probes: Vec<Vec<f32>> = bytes
        .chunks_exact(4 * dim)
        .map(|p| p.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        .collect();
    let store = Store::connect(url, *clients.iter().max().unwrap_or(&1) as u32 + 1).await?;
    let search = Search { store, collection, top_k, probes: Arc::new(probes) };

    let started = Instant::now();
    search.one(0).await?;
    let first_ms = started.elapsed().as_secs_f64() * 1e3;
    search.pass(1).await?;
    let mut passes = Vec::new();
    for &n in &clients {
        let started = Instant::now();
        let answers = search.pass(n).await?;
        let wall_s = started.elapsed().as_secs_f64();
        let answers: Vec<serde_json::Value> = answers
            .into_iter()
            .map(|(ms, hits)| {
                let hits: Vec<_> = hits
                    .iter()
                    .map(
                        |h| serde_json::json!({"face_id": h.face_id, "subject": h.subject, "similarity": h.similarity}),
                    )
                    .collect();
                serde_json::json!({"ms": ms, "hits": hits})
            })
            .collect();
        passes.push(serde_json::json!({"clients": n, "wall_s": wall_s, "answers": answers}));
    }
    let rss_kib = rss_kib();
    println!("{}", serde_json::json!({"first_search_ms": first_ms, "rss_kib": rss_kib, "passes": passes}));
    Ok(())
}

#[derive(Clone)]
struct Search {
    store: Store,
    collection: CollectionName,
    top_k: u32,
    probes: Arc<Vec<Vec<f32>>>,
}

impl Search {
    async fn one(&self, i: usize) -> Result<Answer, facerec_store::StoreError> {
        let started = Instant::now();
        let hits = self
            .store
            .search_subjects(&self.collection, EMBEDDER, &self.probes[i], self.top_k, SearchSettings::default())
            .await?;
        Ok((started.elapsed().as_secs_f64() * 1e3, hits))
    }

    /// Every probe once, spread over `clients` concurrent searchers.
    async fn pass(&self, clients: usize) -> Result<Vec<Answer>, Box<dyn std::error::Error>> {
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (search, next) = (self.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= search.probes.len() {
                        return Ok::<_, facerec_store::StoreError>(done);
                    }
                    done.push((i, search.one(i).await?));
                }
            }));
        }
        let mut answers: Vec<Option<Answer>> = vec![None; self.probes.len()];
        for task in tasks {
            for (i, answer) in task.await?? {
                answers[i] = Some(answer);
            }
        }
        Ok(answers.into_iter().flatten().collect())
    }
}

/// This process's resident memory (the index, mostly), from /proc.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
