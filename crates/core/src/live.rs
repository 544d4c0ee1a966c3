//! Live recognition: what a stream's answers carry, its error codes, and how
//! faces are tracked from frame to frame so that a face in view is embedded
//! when it appears and now and then, not on every frame.
//!
//! Tracking is by box overlap alone: a detection continues the track whose
//! last box it overlaps most (intersection over union), greedily, best pairs
//! first. The api keeps a stream's tracks between frames and sends them with
//! each frame; the worker that takes the frame plans with [`plan_tracks`].

use serde::{Deserialize, Serialize};

use crate::{BBox, BestMatch, FaceMatch};

/// Stable codes of the error messages a live stream sends (the stream stays
/// open unless the code says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveErrorCode {
    /// The frame is over `FACEREC_LIVE_MAX_FRAME_BYTES`.
    PayloadTooLarge,
    /// The frame is not JPEG, PNG or WebP (judged by its bytes).
    UnsupportedMediaType,
    /// The frame is empty or cannot be decoded.
    CorruptImage,
    /// The frame has more pixels than `FACEREC_MAX_PIXELS`.
    ImageTooLarge,
    /// Frames come faster than `FACEREC_LIVE_MAX_FPS`; this one was discarded.
    RateLimited,
    /// A text message that is not a control message this stream understands.
    InvalidMessage,
    /// No worker answered the frame within `FACEREC_LIVE_TIMEOUT_MS`.
    NoWorker,
    /// Redis refused the frame.
    QueueUnavailable,
    /// The worker failed on our side.
    InternalError,
    /// No message within `FACEREC_LIVE_IDLE_SECS`; the stream closes.
    IdleTimeout,
    /// The api has a master key and the stream sent none; the stream closes.
    MissingApiKey,
    /// The key is unknown, deleted or expired; the stream closes.
    InvalidApiKey,
    /// The key may not recognize in this collection; the stream closes.
    Forbidden,
    /// The collection does not exist; the stream closes.
    CollectionNotFound,
}

/// One face of a live answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveFace {
    pub bbox: BBox,
    /// Eyes (image-left, image-right), nose tip, mouth corners (image-left, image-right).
    #[serde(serialize_with = "crate::float::points_short")]
    pub landmarks: [[f32; 2]; 5],
    #[serde(serialize_with = "crate::float::f32_short")]
    pub detection_score: f32,
    /// The subject named at or above the threshold, or null.
    pub best: Option<BestMatch>,
    pub matches: Vec<FaceMatch>,
    /// Stable while the face stays in view.
    pub track_id: u64,
    /// Whether this frame embedded and searched the face (else the track's
    /// last search result is carried over).
    pub embedded: bool,
}

/// A face followed across frames, as the api keeps it between frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveTrack {
    pub id: u64,
    pub bbox: BBox,
    pub best: Option<BestMatch>,
    pub matches: Vec<FaceMatch>,
    /// [`face_score`] of the view last embedded.
    pub embedded_score: f32,
    /// Frames processed since the last embedding.
    pub since_embed: u32,
    /// Consecutive processed frames in which the face was not found.
    pub missed: u32,
}

/// When a track is embedded again, and how long it outlives a missed detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackPolicy {
    /// A detection continues a track when their boxes overlap at least this much.
    pub min_iou: f32,
    /// Embed a track again after this many processed frames.
    pub reembed_every: u32,
    /// Embed a track again when its view's [`face_score`] is this many times the last embedded one.
    pub better_by: f32,
    /// Forget a track after this many frames without it.
    pub keep_missed: u32,
}

impl Default for TrackPolicy {
    fn default() -> Self {
        Self { min_iou: 0.3, reembed_every: 15, better_by: 1.2, keep_missed: 5 }
    }
}

/// What to do with one detection of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackStep {
    /// No track continues: a new face, to embed.
    New,
    /// Continues track `index` (into the previous tracks); embed again.
    Refresh(usize),
    /// Continues track `index`; carry its last result over.
    Keep(usize),
}

impl TrackStep {
    pub fn embeds(self) -> bool {
        !matches!(self, TrackStep::Keep(_))
    }
}

/// How good a view of a face is for recognition, from the detection alone:
/// the detector's score, times how frontal it is, times how large (full
/// marks from 48 px between the eyes).
pub fn face_score(detection_score: f32, inter_eye_distance: f32, pose_offset: f32) -> f32 {
    let frontal = (1.0 - pose_offset.clamp(0.0, 1.0)).max(0.05);
    let size = (inter_eye_distance / 48.0).clamp(0.05, 1.0);
    detection_score.clamp(0.0, 1.0) * frontal * size
}

/// Assigns each detection (box and [`face_score`]) a step, given the tracks
/// of the previous frame: greedily by overlap, each track continued at most once.
pub fn plan_tracks(tracks: &[LiveTrack], detections: &[(BBox, f32)], policy: &TrackPolicy) -> Vec<TrackStep> {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (d, (bbox, _)) in detections.iter().enumerate() {
        for (t, track) in tracks.iter().enumerate() {
            let iou = bbox.iou(&track.bbox);
            if iou >= policy.min_iou {
                pairs.push((iou, d, t));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut steps = vec![TrackStep::New; detections.len()];
    let (mut detection_taken, mut track_taken) = (vec![false; detections.len()], vec![false; tracks.len()]);
    for (_, d, t) in pairs {
        if detection_taken[d] || track_taken[t] {
            continue;
        }
        detection_taken[d] = true;
        track_taken[t] = true;
        let track = &tracks[t];
        let stale = track.since_embed + 1 >= policy.reembed_every;
        let better = detections[d].1 > track.embedded_score * policy.better_by;
        // A track never searched (too small until now) has no result to carry.
        let unsearched = track.embedded_score <= 0.0;
        steps[d] = if stale || better || unsearched { TrackStep::Refresh(t) } else { TrackStep::Keep(t) };
    }
    steps
}

/// The tracks to keep after a frame: `seen` (those of this frame's faces) and
/// the previous ones not continued, aged by one missed frame until forgotten.
pub fn carry_tracks(
    previous: Vec<LiveTrack>,
    continued: &[usize],
    seen: Vec<LiveTrack>,
    policy: &TrackPolicy,
) -> Vec<LiveTrack> {
    let mut tracks = seen;
    for (i, mut track) in previous.into_iter().enumerate() {
        if continued.contains(&i) {
            continue;
        }
        track.missed += 1;
        if track.missed <= policy.keep_missed {
            tracks.push(track);
        }
    }
    tracks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bbox(x: f32) -> BBox {
        BBox { x, y: 10.0, width: 100.0, height: 120.0 }
    }

    fn track(id: u64, x: f32, since_embed: u32, embedded_score: f32) -> LiveTrack {
        LiveTrack { id, bbox: bbox(x), best: None, matches: vec![], embedded_score, since_embed, missed: 0 }
    }

    #[test]
    fn a_face_that_moves_a_little_keeps_its_track_without_embedding() {
        let policy = TrackPolicy::default();
        let tracks = [track(1, 0.0, 3, 0.8), track(2, 400.0, 3, 0.8)];
        let steps = plan_tracks(&tracks, &[(bbox(405.0), 0.8), (bbox(8.0), 0.8), (bbox(200.0), 0.8)], &policy);
        assert_eq!(steps, vec![TrackStep::Keep(1), TrackStep::Keep(0), TrackStep::New]);
    }

    #[test]
    fn a_track_is_embedded_again_when_stale_or_better_seen() {
        let policy = TrackPolicy { reembed_every: 10, better_by: 1.2, ..TrackPolicy::default() };
        let stale = plan_tracks(&[track(1, 0.0, 9, 0.8)], &[(bbox(0.0), 0.8)], &policy);
        assert_eq!(stale, vec![TrackStep::Refresh(0)]);
        let better = plan_tracks(&[track(1, 0.0, 2, 0.5)], &[(bbox(0.0), 0.61)], &policy);
        assert_eq!(better, vec![TrackStep::Refresh(0)]);
        let same = plan_tracks(&[track(1, 0.0, 2, 0.5)], &[(bbox(0.0), 0.59)], &policy);
        assert_eq!(same, vec![TrackStep::Keep(0)]);
    }

    #[test]
    fn one_track_is_continued_once_by_the_best_overlap() {
        let steps =
            plan_tracks(&[track(1, 0.0, 0, 0.8)], &[(bbox(30.0), 0.8), (bbox(2.0), 0.8)], &TrackPolicy::default());
        assert_eq!(steps, vec![TrackStep::New, TrackStep::Keep(0)]);
    }

    #[test]
    fn missed_tracks_are_kept_a_few_frames_then_forgotten() {
        let policy = TrackPolicy { keep_missed: 1, ..TrackPolicy::default() };
        let kept = carry_tracks(
            vec![track(1, 0.0, 0, 0.8), track(2, 300.0, 0, 0.8)],
            &[0],
            vec![track(1, 1.0, 1, 0.8)],
            &policy,
        );
        assert_eq!(kept.iter().map(|t| (t.id, t.missed)).collect::<Vec<_>>(), vec![(1, 0), (2, 1)]);
        let gone = carry_tracks(kept, &[0], vec![track(1, 2.0, 2, 0.8)], &policy);
        assert_eq!(gone.iter().map(|t| t.id).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn score_prefers_large_frontal_confident_faces() {
        assert!(face_score(0.9, 60.0, 0.05) > face_score(0.9, 20.0, 0.05));
        assert!(face_score(0.9, 60.0, 0.05) > face_score(0.9, 60.0, 0.4));
        assert!(face_score(0.9, 60.0, 0.05) > face_score(0.6, 60.0, 0.05));
        assert!(face_score(0.0, 0.0, 10.0) >= 0.0);
    }

    #[test]
    fn codes_serialize_in_snake_case() {
        assert_eq!(serde_json::to_value(LiveErrorCode::NoWorker).unwrap(), "no_worker");
    }
}
