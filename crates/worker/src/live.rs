//! Live frames: taken from Redis beside the jobs, recognized on the same
//! pipelines, answered straight back to the api that waits for them.
//!
//! A frame costs a decode and a detection. Only faces that start a track, or
//! whose track is due again (every `FACEREC_LIVE_REEMBED_FRAMES` frames, or
//! when the view is clearly better), are aligned, embedded and searched;
//! the others carry their track's last result over.

use std::time::{Duration, Instant};

use facerec_core::{
    BBox, BestMatch, FaceMatch, JobErrorCode, LiveErrorCode, LiveFace, LiveTrack, TrackPolicy, TrackStep, carry_tracks,
    face_score, plan_tracks,
};
use facerec_queue::{LiveLink, LiveOutcome, LiveReply, LiveRequest};
use facerec_telemetry::Stage;
use facerec_telemetry::metrics::names;
use facerec_vision::{Detection, decode_image, inter_eye_distance, pose_offset};
use tokio::sync::watch;
use tracing::{Instrument, warn};

use crate::handler::{Failure, JobContext};

/// Serves live frames until `stop` turns true (or its sender is gone);
/// reconnects after Redis errors.
pub(crate) async fn live_loop(ctx: JobContext, mut stop: watch::Receiver<bool>) {
    let policy = ctx.settings.track_policy();
    let stopped = |stop: &watch::Receiver<bool>| *stop.borrow() || stop.has_changed().is_err();
    while !stopped(&stop) {
        let mut link = match LiveLink::connect(ctx.settings.queue.redis_url.expose(), &ctx.settings.queue.name).await {
            Ok(link) => link,
            Err(e) => {
                warn!(error = %e, "live frames: cannot reach Redis; retrying in 1 s");
                pause(&mut stop).await;
                continue;
            }
        };
        while !stopped(&stop) {
            let request = tokio::select! {
                next = link.next(Duration::from_secs(1)) => next,
                _ = stop.changed() => break,
            };
            let request = match request {
                Ok(Some(request)) => request,
                Ok(None) => continue,
                Err(e) => {
                    warn!(error = %e, "live frames: Redis failed; reconnecting");
                    pause(&mut stop).await;
                    break;
                }
            };
            if request.expired() {
                metrics::counter!(names::LIVE_SERVED, "outcome" => "expired").increment(1);
                continue;
            }
            let reply_to = request.reply_to.clone();
            let span =
                tracing::info_span!("live frame", frame = request.frame, collection = request.collection.as_str());
            let reply = serve_frame(&ctx, &policy, request).instrument(span).await;
            match link.reply(&reply_to, &reply).await {
                Ok(()) => {}
                Err(e @ facerec_queue::LiveError::Malformed(_)) => warn!(error = %e, "live frames: not answered"),
                Err(e) => {
                    warn!(error = %e, "live frames: cannot answer; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn pause(stop: &mut watch::Receiver<bool>) {
    // A closed channel returns at once; the caller then sees it and stops.
    let _ = tokio::time::timeout(Duration::from_secs(1), stop.changed()).await;
}

async fn serve_frame(ctx: &JobContext, policy: &TrackPolicy, request: LiveRequest) -> LiveReply {
    let started = Instant::now();
    let frame = request.frame;
    let outcome = match recognize_frame(ctx, policy, request).await {
        Ok((faces, tracks, next_track_id)) => {
            let worker_ms = started.elapsed().as_secs_f64() * 1000.0;
            LiveOutcome::Faces { faces, tracks, next_track_id, worker_ms }
        }
        Err(Failure::Permanent(code, message)) => {
            let code = match code {
                JobErrorCode::ImageTooLarge => LiveErrorCode::ImageTooLarge,
                JobErrorCode::CorruptImage => LiveErrorCode::CorruptImage,
                _ => LiveErrorCode::InternalError,
            };
            LiveOutcome::Error { code, message }
        }
        Err(Failure::Transient(e)) => {
            warn!(error = %e, error.source = ?e.source(), "live frame failed");
            LiveOutcome::Error { code: LiveErrorCode::InternalError, message: "the worker failed on this frame".into() }
        }
    };
    let label = if matches!(outcome, LiveOutcome::Faces { .. }) { "answered" } else { "error" };
    metrics::counter!(names::LIVE_SERVED, "outcome" => label).increment(1);
    LiveReply { frame, outcome }
}

/// A face of the frame: what the detector saw, and the search result if it was embedded.
struct Seen {
    detection: Detection,
    score: f32,
    step: TrackStep,
    embedding: Option<Vec<f32>>,
}

async fn recognize_frame(
    ctx: &JobContext,
    policy: &TrackPolicy,
    request: LiveRequest,
) -> Result<(Vec<LiveFace>, Vec<LiveTrack>, u64), Failure> {
    let LiveRequest { collection, threshold, top_k, max_faces, tracks, mut next_track_id, image, .. } = request;
    let limits = ctx.settings.decode_limits();
    let min_eyes = ctx.settings.recognize_gates().min_inter_eye_distance;
    let plan_policy = *policy;
    let (tracks, seen) = ctx
        .pool
        .run(move |pipeline| -> Result<_, Failure> {
            let image = Stage::Decode.run(|| decode_image(&image, limits))?;
            let mut faces = Stage::Detect.run(|| pipeline.detect(&image))?;
            faces.truncate(max_faces as usize);
            let scored: Vec<(BBox, f32)> = faces.iter().map(|d| (d.bbox, score(d))).collect();
            let steps = plan_tracks(&tracks, &scored, &plan_policy);
            let mut seen: Vec<Seen> = faces
                .into_iter()
                .zip(scored)
                .zip(steps)
                .map(|((detection, (_, score)), step)| Seen { detection, score, step, embedding: None })
                .collect();
            // Faces too small to recognize are tracked, never searched.
            let due: Vec<usize> = (0..seen.len())
                .filter(|&i| seen[i].step.embeds() && inter_eye_distance(&seen[i].detection.landmarks) >= min_eyes)
                .collect();
            if !due.is_empty() {
                let crops: Vec<_> =
                    Stage::Align.run(|| due.iter().map(|&i| pipeline.align(&image, &seen[i].detection)).collect());
                metrics::histogram!(names::EMBED_BATCH_SIZE).record(crops.len() as f64);
                let embeddings = Stage::Embed.run(|| pipeline.embed_aligned_batch(&crops))?;
                for (i, embedding) in due.into_iter().zip(embeddings) {
                    seen[i].embedding = Some(embedding);
                }
            }
            Ok((tracks, seen))
        })
        .await
        .map_err(|e| Failure::Transient(Box::new(e)))??;

    let search = ctx.settings.search();
    let (mut faces, mut continued, mut kept) = (Vec::with_capacity(seen.len()), Vec::new(), Vec::new());
    for face in seen {
        let previous = match face.step {
            TrackStep::Refresh(t) | TrackStep::Keep(t) => {
                continued.push(t);
                Some(&tracks[t])
            }
            TrackStep::New => None,
        };
        let (track, embedded) = match face.embedding {
            Some(embedding) => {
                let hits = Stage::Search
                    .time(ctx.store.search_subjects(&collection, ctx.pool.embedder_id(), &embedding, top_k, search))
                    .await?;
                let mut matches: Vec<FaceMatch> = hits.into_iter().map(FaceMatch::from).collect();
                let best = BestMatch::mark(&mut matches, threshold);
                let id = previous.map_or_else(|| take_id(&mut next_track_id), |p| p.id);
                let track = LiveTrack {
                    id,
                    bbox: face.detection.bbox,
                    best,
                    matches,
                    embedded_score: face.score,
                    since_embed: 0,
                    missed: 0,
                };
                (track, true)
            }
            None => {
                let track = match previous {
                    Some(p) => {
                        LiveTrack { bbox: face.detection.bbox, since_embed: p.since_embed + 1, missed: 0, ..p.clone() }
                    }
                    None => LiveTrack {
                        id: take_id(&mut next_track_id),
                        bbox: face.detection.bbox,
                        best: None,
                        matches: Vec::new(),
                        embedded_score: 0.0,
                        since_embed: 0,
                        missed: 0,
                    },
                };
                (track, false)
            }
        };
        faces.push(LiveFace {
            bbox: face.detection.bbox,
            landmarks: face.detection.landmarks,
            detection_score: face.detection.score,
            best: track.best.clone(),
            matches: track.matches.clone(),
            track_id: track.id,
            embedded,
        });
        kept.push(track);
    }
    Ok((faces, carry_tracks(tracks, &continued, kept, policy), next_track_id))
}

fn take_id(next: &mut u64) -> u64 {
    let id = *next;
    *next += 1;
    id
}

fn score(d: &Detection) -> f32 {
    face_score(d.score, inter_eye_distance(&d.landmarks), pose_offset(&d.landmarks))
}
