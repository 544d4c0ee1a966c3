//! Live frames: taken from Redis beside the jobs, recognized on the same
//! pipelines, answered straight back to the api that waits for them.
//!
//! A frame costs a decode, a detection and an alignment per face. Only faces
//! that start a track, that may be someone else (they look different from the
//! view their track measured, jumped, or touch another face), or whose track
//! is due again (every `FACEREC_LIVE_REEMBED_FRAMES` frames, or when the view
//! is clearly better) are embedded and searched; the others carry their
//! track's last result over, with its age.

use std::time::{Duration, Instant};

use facerec_core::{
    BBox, BestMatch, FaceMatch, JobErrorCode, LiveErrorCode, LiveFace, LiveTrack, Sighting, THUMBNAIL_SIDE,
    TrackMeasurement, TrackPolicy, TrackStep, carry_tracks, face_score, plan_tracks, same_person,
};
use facerec_queue::{LiveLink, LiveOutcome, LiveReply, LiveRequest};
use facerec_telemetry::Stage;
use facerec_telemetry::metrics::names;
use facerec_vision::{Detection, decode_image, inter_eye_distance, pose_offset};
use image::RgbImage;
use tokio::sync::watch;
use tracing::{Instrument, warn};

use crate::context::JobContext;
use crate::failure::Failure;

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

/// A face of the frame: what the detector saw, how it looks, and its embedding if it was due one.
struct Seen {
    detection: Detection,
    sighting: Sighting,
    step: TrackStep,
    embedding: Option<Vec<f32>>,
}

async fn recognize_frame(
    ctx: &JobContext,
    policy: &TrackPolicy,
    request: LiveRequest,
) -> Result<(Vec<LiveFace>, Vec<LiveTrack>, u64), Failure> {
    let LiveRequest {
        frame,
        received_at_ms,
        collection,
        threshold,
        top_k,
        max_faces,
        tracks,
        mut next_track_id,
        image,
        ..
    } = request;
    let limits = ctx.settings.decode_limits();
    let min_eyes = ctx.settings.recognize_gates().min_inter_eye_distance;
    let plan_policy = *policy;
    let (tracks, seen) = ctx
        .pool
        .run(move |pipeline| -> Result<_, Failure> {
            let image = Stage::Decode.run(|| decode_image(&image, limits))?;
            let mut faces = Stage::Detect.run(|| pipeline.detect(&image))?;
            faces.truncate(max_faces as usize);
            // Every face is aligned (cheap beside embedding): its thumbnail tells whether it still looks like the
            // view its track measured.
            let crops: Vec<RgbImage> = Stage::Align.run(|| faces.iter().map(|d| pipeline.align(&image, d)).collect());
            let sightings: Vec<Sighting> = faces
                .iter()
                .zip(&crops)
                .map(|(d, crop)| Sighting {
                    bbox: d.bbox,
                    landmarks: d.landmarks,
                    score: score(d),
                    thumbnail: thumbnail(crop),
                })
                .collect();
            let steps = plan_tracks(&tracks, &sightings, &plan_policy);
            let mut seen: Vec<Seen> = faces
                .into_iter()
                .zip(sightings)
                .zip(steps)
                .map(|((detection, sighting), step)| Seen { detection, sighting, step, embedding: None })
                .collect();
            // Faces too small to recognize are tracked, never searched.
            let due: Vec<usize> = (0..seen.len())
                .filter(|&i| seen[i].step.embeds() && inter_eye_distance(&seen[i].detection.landmarks) >= min_eyes)
                .collect();
            if !due.is_empty() {
                let crops: Vec<RgbImage> =
                    crops.into_iter().enumerate().filter(|(i, _)| due.contains(i)).map(|(_, crop)| crop).collect();
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
        let previous = face.step.track().map(|t| (t, &tracks[t]));
        let Seen { detection, sighting, step, embedding } = face;
        let track = match embedding {
            Some(embedding) => {
                // Someone else where the track's person stood: a new track; the old one is not continued.
                let previous =
                    previous.filter(|(_, p)| p.measured.as_ref().is_none_or(|m| same_person(m, &embedding, policy)));
                if let Some((t, _)) = previous {
                    continued.push(t);
                }
                let hits = Stage::Search
                    .time(ctx.store.search_subjects(&collection, ctx.pool.embedder_id(), &embedding, top_k, search))
                    .await?;
                let mut matches: Vec<FaceMatch> = hits.into_iter().map(FaceMatch::from).collect();
                let best = BestMatch::mark(&mut matches, threshold);
                LiveTrack {
                    id: previous.map_or_else(|| take_id(&mut next_track_id), |(_, p)| p.id),
                    bbox: detection.bbox,
                    best,
                    matches,
                    since_embed: 0,
                    missed: 0,
                    measured: Some(TrackMeasurement { embedding, view: sighting, frame, received_at_ms }),
                }
            }
            None => {
                let (track, continues) = unembedded(step, previous, detection.bbox, &mut next_track_id);
                continued.extend(continues);
                track
            }
        };
        faces.push(live_face(detection, &track, frame, received_at_ms));
        kept.push(track);
    }
    Ok((faces, carry_tracks(tracks, &continued, kept, policy), next_track_id))
}

/// A face's answer: its track's result, with how old the measurement is
/// (a carried result is never presented as measured on this frame).
fn live_face(detection: Detection, track: &LiveTrack, frame: u64, received_at_ms: u64) -> LiveFace {
    let age = track.measured.as_ref().map(|m| m.age(frame, received_at_ms));
    LiveFace {
        bbox: detection.bbox,
        landmarks: detection.landmarks,
        detection_score: detection.score,
        best: track.best.clone(),
        matches: track.matches.clone(),
        track_id: track.id,
        embedded: track.measured.as_ref().is_some_and(|m| m.frame == frame),
        measured_frames_ago: age.map(|(frames, _)| frames),
        measured_ms_ago: age.map(|(_, ms)| ms),
    }
}

/// The track of a face not embedded on this frame, and the previous track it
/// continues, if any.
fn unembedded(
    step: TrackStep,
    previous: Option<(usize, &LiveTrack)>,
    bbox: BBox,
    next_track_id: &mut u64,
) -> (LiveTrack, Option<usize>) {
    match (step, previous) {
        // Still the face that was measured: its result is carried over, and says so.
        (TrackStep::Keep(_) | TrackStep::Refresh(_), Some((t, p))) => {
            (LiveTrack { bbox, since_embed: p.since_embed + 1, missed: 0, ..p.clone() }, Some(t))
        }
        // A track never measured (always too small): nothing to carry or to lose.
        (_, Some((t, p))) if p.measured.is_none() => (unmeasured(p.id, bbox), Some(t)),
        // Maybe someone else, and too small to tell: nobody is named, and the track's
        // id (which says "the same person") is not handed on; the old track ages as missed.
        _ => (unmeasured(take_id(next_track_id), bbox), None),
    }
}

/// A track with no result: a face too small to search.
fn unmeasured(id: u64, bbox: BBox) -> LiveTrack {
    LiveTrack { id, bbox, best: None, matches: Vec::new(), since_embed: 0, missed: 0, measured: None }
}

fn take_id(next: &mut u64) -> u64 {
    let id = *next;
    *next += 1;
    id
}

fn score(d: &Detection) -> f32 {
    face_score(d.score, inter_eye_distance(&d.landmarks), pose_offset(&d.landmarks))
}

/// The aligned face shrunk to [`THUMBNAIL_SIDE`]² RGB pixels, each the mean of its block.
fn thumbnail(crop: &RgbImage) -> Vec<u8> {
    let (width, height) = (crop.width() as usize, crop.height() as usize);
    let mut out = Vec::with_capacity(THUMBNAIL_SIDE * THUMBNAIL_SIDE * 3);
    for row in 0..THUMBNAIL_SIDE {
        let (y0, y1) = (
            row * height / THUMBNAIL_SIDE,
            ((row + 1) * height / THUMBNAIL_SIDE).max(row * height / THUMBNAIL_SIDE + 1),
        );
        for col in 0..THUMBNAIL_SIDE {
            let (x0, x1) = (
                col * width / THUMBNAIL_SIDE,
                ((col + 1) * width / THUMBNAIL_SIDE).max(col * width / THUMBNAIL_SIDE + 1),
            );
            let mut sum = [0u32; 3];
            let mut count = 0u32;
            for y in y0..y1.min(height) {
                for x in x0..x1.min(width) {
                    let pixel = crop.get_pixel(x as u32, y as u32);
                    for (s, &c) in sum.iter_mut().zip(&pixel.0) {
                        *s += u32::from(c);
                    }
                    count += 1;
                }
            }
            out.extend(sum.map(|s| (s / count.max(1)) as u8));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_face_in_doubt_too_small_to_measure_gets_no_name_and_not_the_tracks_id() {
        let bbox = BBox { x: 10.0, y: 10.0, width: 20.0, height: 24.0 };
        let sighting = Sighting { bbox, landmarks: [[0.0; 2]; 5], score: 0.5, thumbnail: vec![0; 768] };
        let measured = LiveTrack {
            id: 7,
            bbox,
            best: None,
            matches: Vec::new(),
            since_embed: 2,
            missed: 0,
            measured: Some(TrackMeasurement { embedding: vec![1.0; 128], view: sighting, frame: 3, received_at_ms: 0 }),
        };
        let mut next = 9;
        // Looks the same: carried, same id.
        let (kept, continues) = unembedded(TrackStep::Keep(0), Some((0, &measured)), bbox, &mut next);
        assert_eq!((kept.id, continues, kept.since_embed, kept.measured.is_some()), (7, Some(0), 3, true));
        // In doubt and not measurable: a new id, no result, the old track not continued.
        let (doubt, continues) = unembedded(TrackStep::Recheck(0), Some((0, &measured)), bbox, &mut next);
        assert_eq!((doubt.id, continues, doubt.measured.is_none(), doubt.best.is_none()), (9, None, true, true));
        assert_eq!(next, 10);
        // A track that never had a result keeps its id: there is no identity to hand on.
        let never = unmeasured(4, bbox);
        let (small, continues) = unembedded(TrackStep::Recheck(0), Some((0, &never)), bbox, &mut next);
        assert_eq!((small.id, continues), (4, Some(0)));
    }

    #[test]
    fn a_thumbnail_averages_blocks_of_the_crop() {
        let crop = RgbImage::from_fn(112, 112, |x, _| image::Rgb([if x < 56 { 0 } else { 200 }, 10, 20]));
        let thumb = thumbnail(&crop);
        assert_eq!(thumb.len(), THUMBNAIL_SIDE * THUMBNAIL_SIDE * 3);
        assert_eq!(&thumb[..3], &[0, 10, 20]);
        assert_eq!(&thumb[(THUMBNAIL_SIDE - 1) * 3..THUMBNAIL_SIDE * 3], &[200, 10, 20]);
        assert_eq!(
            thumbnail(&RgbImage::new(0, 0)).len(),
            THUMBNAIL_SIDE * THUMBNAIL_SIDE * 3,
            "an empty crop still has a thumbnail"
        );
    }
}
