//! A camera's worth of frames through `/v1/live` (make bench-live): sends
//! 640×480 JPEG frames of a test photo at a fixed rate whatever the answers
//! do, as a camera would, and reports answers/s, latency, how often the
//! person is named, the drops, and the resident memory of the given processes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    /// ws://host:port/v1/live?collection=…
    #[arg(long)]
    url: String,
    /// The photo the frames are made of.
    #[arg(long)]
    photo: std::path::PathBuf,
    /// The subject the answers should name.
    #[arg(long)]
    expect: String,
    #[arg(long, default_value_t = 15.0)]
    fps: f64,
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Answers before this many seconds are not counted (models warming up).
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Processes whose resident memory is sampled every 10 s (name=pid).
    #[arg(long, value_delimiter = ',')]
    pids: Vec<String>,
}

fn rss_mib(pid: &str) -> f64 {
    facerec_testkit::resident_bytes_of(pid).unwrap_or(0) as f64 / (1024.0 * 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let photo = std::fs::read(&args.photo)?;
    // A face moving a little from frame to frame.
    let frames: Vec<Vec<u8>> = (0..30).map(|i| facerec_testkit::camera_frame(&photo, (i % 15) * 2 - 15)).collect();
    let (socket, _) = tokio_tungstenite::connect_async(&args.url).await?;
    let (mut tx, mut rx) = socket.split();
    let ready: Value = match rx.next().await {
        Some(Ok(Message::Text(t))) => serde_json::from_str(&t)?,
        other => anyhow::bail!("no ready message: {other:?}"),
    };
    anyhow::ensure!(ready["type"] == "ready", "{ready}");

    let started = Instant::now();
    let (period, total) = (Duration::from_secs_f64(1.0 / args.fps), Duration::from_secs(args.seconds));
    let warmup = Duration::from_secs(args.warmup);
    let sent_at = std::sync::Arc::new(std::sync::Mutex::new(HashMap::<u64, Instant>::new()));
    let sender = {
        let sent_at = sent_at.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n = 0u64;
            while started.elapsed() < total {
                tick.tick().await;
                n += 1;
                sent_at.lock().unwrap().insert(n, Instant::now());
                if tx.send(Message::Binary(frames[n as usize % frames.len()].clone().into())).await.is_err() {
                    break;
                }
            }
            (n, tx)
        })
    };
    let mut memory: Vec<(u64, Vec<f64>)> = Vec::new();
    let mut next_sample = Duration::ZERO;
    let (mut client_ms, mut server_ms, mut worker_ms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut answers, mut named, mut errors, mut dropped, mut embedded_faces, mut faces) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    while started.elapsed() < total + Duration::from_secs(2) {
        if started.elapsed() >= next_sample {
            memory.push((
                started.elapsed().as_secs(),
                args.pids.iter().map(|p| rss_mib(p.split('=').nth(1).unwrap_or(p))).collect(),
            ));
            next_sample += Duration::from_secs(10);
        }
        let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(500), rx.next()).await else { continue };
        let Message::Text(text) = message? else { continue };
        let message: Value = serde_json::from_str(&text)?;
        let frame = message["frame"].as_u64().unwrap_or(0);
        let sent = sent_at.lock().unwrap().remove(&frame);
        if started.elapsed() < warmup || started.elapsed() > total {
            continue;
        }
        if message["type"] != "answer" {
            errors += 1;
            continue;
        }
        answers += 1;
        dropped = message["dropped"].as_u64().unwrap_or(0);
        if let Some(sent) = sent {
            client_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
        server_ms.push(message["latency_ms"].as_f64().unwrap_or(f64::NAN));
        worker_ms.push(message["worker_ms"].as_f64().unwrap_or(f64::NAN));
        let list = message["faces"].as_array().cloned().unwrap_or_default();
        faces += list.len() as u64;
        embedded_faces += list.iter().filter(|f| f["embedded"] == true).count() as u64;
        named += u64::from(list.iter().any(|f| f["best"]["subject"] == args.expect.as_str()));
    }
    let (sent, _tx) = sender.await?;
    for v in [&mut client_ms, &mut server_ms, &mut worker_ms] {
        v.sort_by(f64::total_cmp);
    }
    let counted = (args.seconds - args.warmup) as f64;
    let path: Vec<f64> = {
        let mut d: Vec<f64> = server_ms.iter().zip(&worker_ms).map(|(s, w)| s - w).collect();
        d.sort_by(f64::total_cmp);
        d
    };
    let summary = json!({
        "frames_sent": sent,
        "sent_per_s": sent as f64 / args.seconds as f64,
        "answers_per_s": answers as f64 / counted,
        "named_pct": 100.0 * named as f64 / answers.max(1) as f64,
        "errors": errors,
        "dropped_total": dropped,
        "embedded_pct_of_faces": 100.0 * embedded_faces as f64 / faces.max(1) as f64,
        "client_ms": {"p50": percentile(&client_ms, 0.5), "p99": percentile(&client_ms, 0.99)},
        "server_ms": {"p50": percentile(&server_ms, 0.5), "p99": percentile(&server_ms, 0.99)},
        "worker_ms": {"p50": percentile(&worker_ms, 0.5), "p99": percentile(&worker_ms, 0.99)},
        // What the api and Redis add to the worker's own time (sorted separately, so not exactly p50(server) - p50(worker)).
        "path_ms": {"p50": percentile(&path, 0.5), "p99": percentile(&path, 0.99)},
        "memory_mib": memory.iter().map(|(t, m)| json!({"t": t, "rss": m})).collect::<Vec<_>>(),
        "processes": args.pids,
    });
    println!("{summary}");
    Ok(())
}
