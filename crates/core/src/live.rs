//! Live recognition: what a stream's answers carry, its error codes, and how
//! faces are tracked from frame to frame so that a face in view is embedded
//! when it appears and now and then, not on every frame.
//!
//! A detection continues the track whose last box it overlaps most
//! (intersection over union), greedily, best pairs first. Overlap alone does
//! not say who stands in the box, so a track's result is carried over only
//! while the face still looks like the view that was measured (thumbnail,
//! landmark geometry, no jump of the box) and no other face crowds it; any
//! doubt re-embeds, and a re-embedded face that is someone else starts a new
//! track. The api keeps a stream's tracks between frames and sends them with
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
    /// The api is at its limit of live streams (`FACEREC_LIVE_MAX_STREAMS`)
    /// when a stream that authenticated by message asks for one; the stream closes.
    ServerBusy,
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
    /// Stable while the same person stays in view.
    pub track_id: u64,
    /// Whether this frame embedded and searched the face (else `best` and
    /// `matches` are the track's last search, carried over).
    pub embedded: bool,
    /// How many frames of the stream ago `best` and `matches` were measured:
    /// 0 when `embedded`; null when the face has no measurement (too small to search).
    #[serde(default)]
    pub measured_frames_ago: Option<u64>,
    /// How long before this frame the measured one reached the api, in milliseconds.
    #[serde(default)]
    pub measured_ms_ago: Option<u64>,
}

/// A face as one frame shows it: what the detector and a cheap look say,
/// before any embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sighting {
    pub bbox: BBox,
    pub landmarks: [[f32; 2]; 5],
    /// [`face_score`] of this view.
    pub score: f32,
    /// A small RGB thumbnail of the aligned face ([`THUMBNAIL_SIDE`]² pixels, row by row).
    pub thumbnail: Vec<u8>,
}

/// Side of a [`Sighting`]'s thumbnail, in pixels.
pub const THUMBNAIL_SIDE: usize = 16;

/// What a track's result was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackMeasurement {
    /// The face's embedding then.
    pub embedding: Vec<f32>,
    /// The view embedded: later views must look like it for the result to be carried.
    pub view: Sighting,
    /// The stream's number of the frame measured.
    pub frame: u64,
    /// When the api received that frame (Unix milliseconds, the api's clock).
    pub received_at_ms: u64,
}

impl TrackMeasurement {
    /// The age of this measurement at frame `frame`, received at `received_at_ms`.
    pub fn age(&self, frame: u64, received_at_ms: u64) -> (u64, u64) {
        (frame.saturating_sub(self.frame), received_at_ms.saturating_sub(self.received_at_ms))
    }
}

/// A face followed across frames, as the api keeps it between frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveTrack {
    pub id: u64,
    /// Where the face was in the last frame it was seen.
    pub bbox: BBox,
    pub best: Option<BestMatch>,
    pub matches: Vec<FaceMatch>,
    /// Frames processed since the last embedding.
    pub since_embed: u32,
    /// Consecutive processed frames in which the face was not found.
    pub missed: u32,
    /// What `best` and `matches` were measured on; `None` when the track has
    /// no result to carry (never searched, or seen changed and not searched again).
    pub measured: Option<TrackMeasurement>,
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
    /// The bounds of [`looks_changed`]: beyond any, the face may be someone else.
    pub change: ChangeBounds,
    /// A re-embedded face whose cosine similarity to its track's last
    /// embedding is below this is someone else: it starts a new track.
    /// Views of one person in a stream stay well above it (0.65 at worst
    /// between different photos of one person in our fixtures); different
    /// people stay well below (0.28 at most).
    pub same_person: f32,
}

impl Default for TrackPolicy {
    fn default() -> Self {
        Self {
            min_iou: 0.3,
            reembed_every: 15,
            better_by: 1.2,
            keep_missed: 5,
            change: ChangeBounds::default(),
            same_person: 0.45,
        }
    }
}

/// How far a face may change from the view last embedded before its
/// identity is checked again. Chosen on the aligned faces of our test
/// photos: none of 1,385 pairs of different people passes both thumbnail
/// bounds (the most alike correlate at 0.97, or differ by 11.4). The price:
/// as a face moves a few pixels a frame, the detector's landmarks jitter and
/// about one frame in four is embedded again. That costs an embedding; a
/// wrong name is worse.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChangeBounds {
    /// Least correlation of the thumbnails' brightness patterns.
    pub min_correlation: f32,
    /// Largest mean absolute difference of the thumbnails' pixels (0–255).
    pub max_difference: f32,
    /// Largest move of a landmark within its box, as a fraction of the box's side.
    pub max_landmark_shift: f32,
    /// Largest move of the box's centre from the last frame, in box widths.
    pub max_jump: f32,
    /// Largest ratio of box widths from the last frame (either way).
    pub max_scale: f32,
}

impl Default for ChangeBounds {
    fn default() -> Self {
        Self { min_correlation: 0.9, max_difference: 10.0, max_landmark_shift: 0.08, max_jump: 0.5, max_scale: 1.25 }
    }
}

/// What to do with one detection of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackStep {
    /// No track continues: a new face, to embed.
    New,
    /// Continues track `index` (into the previous tracks), still the same
    /// face by its looks; embed again (stale, or a better view). Its last
    /// result still holds if the face cannot be embedded.
    Refresh(usize),
    /// Continues track `index`, but the face may be someone else now: embed,
    /// and carry nothing over if it cannot be embedded.
    Recheck(usize),
    /// Continues track `index`; carry its last result over.
    Keep(usize),
}

impl TrackStep {
    pub fn embeds(self) -> bool {
        !matches!(self, TrackStep::Keep(_))
    }

    /// The previous track this detection continues, if any.
    pub fn track(self) -> Option<usize> {
        match self {
            TrackStep::New => None,
            TrackStep::Refresh(t) | TrackStep::Recheck(t) | TrackStep::Keep(t) => Some(t),
        }
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

/// Assigns each detection a step, given the tracks of the previous frame:
/// greedily by overlap, each track continued at most once.
pub fn plan_tracks(tracks: &[LiveTrack], sightings: &[Sighting], policy: &TrackPolicy) -> Vec<TrackStep> {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (d, sighting) in sightings.iter().enumerate() {
        for (t, track) in tracks.iter().enumerate() {
            let iou = sighting.bbox.iou(&track.bbox);
            if iou >= policy.min_iou {
                pairs.push((iou, d, t));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut steps = vec![TrackStep::New; sightings.len()];
    let (mut detection_taken, mut track_taken) = (vec![false; sightings.len()], vec![false; tracks.len()]);
    for (_, d, t) in pairs {
        if detection_taken[d] || track_taken[t] {
            continue;
        }
        detection_taken[d] = true;
        track_taken[t] = true;
        let (track, sighting) = (&tracks[t], &sightings[d]);
        // A track never searched (too small until now) has no result to carry.
        let Some(measured) = &track.measured else {
            steps[d] = TrackStep::Recheck(t);
            continue;
        };
        let moved = jumped(&track.bbox, &sighting.bbox, &policy.change);
        if moved || looks_changed(&measured.view, sighting, &policy.change) || crowded(tracks, sightings, d, t) {
            steps[d] = TrackStep::Recheck(t);
            continue;
        }
        let stale = track.since_embed + 1 >= policy.reembed_every;
        let better = sighting.score > measured.view.score * policy.better_by;
        steps[d] = if stale || better { TrackStep::Refresh(t) } else { TrackStep::Keep(t) };
    }
    steps
}

/// Whether the box moved or changed size, from one processed frame to the next, more than a face does.
fn jumped(last: &BBox, now: &BBox, bounds: &ChangeBounds) -> bool {
    let centre = |b: &BBox| (b.x + b.width / 2.0, b.y + b.height / 2.0);
    let ((x0, y0), (x1, y1)) = (centre(last), centre(now));
    let width = last.width.max(1.0);
    let scale = now.width.max(1.0) / width;
    (x1 - x0).hypot(y1 - y0) > bounds.max_jump * width || !(1.0 / bounds.max_scale..=bounds.max_scale).contains(&scale)
}

/// Whether `now` may show someone other than `measured`: its thumbnail or
/// its landmarks' places within the box differ beyond the bounds.
pub fn looks_changed(measured: &Sighting, now: &Sighting, bounds: &ChangeBounds) -> bool {
    let within = |s: &Sighting, i: usize| {
        let b = &s.bbox;
        [(s.landmarks[i][0] - b.x) / b.width.max(1.0), (s.landmarks[i][1] - b.y) / b.height.max(1.0)]
    };
    let shifted = (0..5).any(|i| {
        let (a, b) = (within(measured, i), within(now, i));
        (a[0] - b[0]).abs().max((a[1] - b[1]).abs()) > bounds.max_landmark_shift
    });
    shifted || !thumbnails_alike(&measured.thumbnail, &now.thumbnail, bounds)
}

/// Correlation of brightness (light and contrast aside) and mean difference
/// of the pixels (which also sees skin, hair and light): both must hold.
fn thumbnails_alike(a: &[u8], b: &[u8], bounds: &ChangeBounds) -> bool {
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    let difference = a.iter().zip(b).map(|(&x, &y)| f32::from(x.abs_diff(y))).sum::<f32>() / a.len() as f32;
    let gray = |t: &[u8]| -> Vec<f32> {
        t.chunks_exact(3).map(|p| p.iter().map(|&c| f32::from(c)).sum::<f32>() / 3.0).collect()
    };
    let (ga, gb) = (gray(a), gray(b));
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let (ma, mb) = (mean(&ga), mean(&gb));
    let (mut cross, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in ga.iter().zip(&gb) {
        cross += (x - ma) * (y - mb);
        va += (x - ma) * (x - ma);
        vb += (y - mb) * (y - mb);
    }
    // A flat thumbnail (no pattern) correlates with nothing: treated as changed.
    let correlation = if va > 0.0 && vb > 0.0 { cross / (va * vb).sqrt() } else { 0.0 };
    correlation >= bounds.min_correlation && difference <= bounds.max_difference
}

/// Whether detection `d` touches another face of this frame, or another
/// track seen in the last frame: where faces overlap, overlap cannot tell them apart.
fn crowded(tracks: &[LiveTrack], sightings: &[Sighting], d: usize, t: usize) -> bool {
    let bbox = &sightings[d].bbox;
    let touches = |other: &BBox| bbox.iou(other) > 0.0;
    sightings.iter().enumerate().any(|(e, s)| e != d && touches(&s.bbox))
        || tracks.iter().enumerate().any(|(u, track)| u != t && track.missed == 0 && touches(&track.bbox))
}

/// Whether a re-embedded face is still the person its track measured.
pub fn same_person(measured: &TrackMeasurement, embedding: &[f32], policy: &TrackPolicy) -> bool {
    // Not comparable (another model, no direction): not shown to be the same person.
    crate::cosine(&measured.embedding, embedding).is_some_and(|c| c >= policy.same_person)
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
#[path = "live_tests.rs"]
mod tests;
