use super::*;

fn bbox(x: f32) -> BBox {
    BBox { x, y: 10.0, width: 100.0, height: 120.0 }
}

/// A face at `x`, its landmarks in the usual places of its box, its thumbnail a pattern drawn from `look`.
fn sighting(x: f32, score: f32, look: u8) -> Sighting {
    let b = bbox(x);
    let at = |fx: f32, fy: f32| [b.x + fx * b.width, b.y + fy * b.height];
    let landmarks = [at(0.3, 0.4), at(0.7, 0.4), at(0.5, 0.6), at(0.35, 0.8), at(0.65, 0.8)];
    let thumbnail = (0..THUMBNAIL_SIDE * THUMBNAIL_SIDE * 3)
        .map(|i| ((i / 3) as u32 * 37 % 200 + 20) as u8)
        .map(|v| v.wrapping_add(look.wrapping_mul(53)))
        .collect();
    Sighting { bbox: b, landmarks, score, thumbnail }
}

fn track(id: u64, x: f32, since_embed: u32, score: f32) -> LiveTrack {
    let measured =
        TrackMeasurement { embedding: vec![1.0, 0.0], view: sighting(x, score, 0), frame: 1, received_at_ms: 1000 };
    LiveTrack { id, bbox: bbox(x), best: None, matches: vec![], since_embed, missed: 0, measured: Some(measured) }
}

#[test]
fn a_face_that_moves_a_little_keeps_its_track_without_embedding() {
    let policy = TrackPolicy::default();
    let tracks = [track(1, 0.0, 3, 0.8), track(2, 400.0, 3, 0.8)];
    let steps =
        plan_tracks(&tracks, &[sighting(405.0, 0.8, 0), sighting(8.0, 0.8, 0), sighting(200.0, 0.8, 0)], &policy);
    assert_eq!(steps, vec![TrackStep::Keep(1), TrackStep::Keep(0), TrackStep::New]);
}

#[test]
fn a_track_is_embedded_again_when_stale_or_better_seen() {
    let policy = TrackPolicy { reembed_every: 10, better_by: 1.2, ..TrackPolicy::default() };
    let stale = plan_tracks(&[track(1, 0.0, 9, 0.8)], &[sighting(0.0, 0.8, 0)], &policy);
    assert_eq!(stale, vec![TrackStep::Refresh(0)]);
    let better = plan_tracks(&[track(1, 0.0, 2, 0.5)], &[sighting(0.0, 0.61, 0)], &policy);
    assert_eq!(better, vec![TrackStep::Refresh(0)]);
    let same = plan_tracks(&[track(1, 0.0, 2, 0.5)], &[sighting(0.0, 0.59, 0)], &policy);
    assert_eq!(same, vec![TrackStep::Keep(0)]);
}

#[test]
fn someone_else_in_the_box_is_checked_again_never_carried() {
    let policy = TrackPolicy::default();
    let tracks = [track(1, 0.0, 2, 0.8)];
    // Another face in the same place: its thumbnail differs.
    let other = plan_tracks(&tracks, &[sighting(0.0, 0.8, 1)], &policy);
    assert_eq!(other, vec![TrackStep::Recheck(0)]);
    // The same thumbnail, but the landmarks sit elsewhere in the box.
    let mut moved = sighting(0.0, 0.8, 0);
    moved.landmarks[2][1] += 15.0;
    assert_eq!(plan_tracks(&tracks, &[moved], &policy), vec![TrackStep::Recheck(0)]);
    // The box doubled in size from one frame to the next.
    let mut grown = sighting(0.0, 0.8, 0);
    grown.bbox.width = 160.0;
    assert_eq!(plan_tracks(&tracks, &[grown], &policy), vec![TrackStep::Recheck(0)]);
    // A track never measured has nothing to carry.
    let unmeasured = LiveTrack { measured: None, ..track(1, 0.0, 2, 0.8) };
    assert_eq!(plan_tracks(&[unmeasured], &[sighting(0.0, 0.8, 0)], &policy), vec![TrackStep::Recheck(0)]);
}

#[test]
fn overlapping_faces_are_checked_again() {
    let policy = TrackPolicy::default();
    let tracks = [track(1, 0.0, 2, 0.8), track(2, 90.0, 2, 0.8)];
    let steps = plan_tracks(&tracks, &[sighting(0.0, 0.8, 0), sighting(90.0, 0.8, 0)], &policy);
    assert_eq!(steps, vec![TrackStep::Recheck(0), TrackStep::Recheck(1)]);
    // A track missed in the last frame does not crowd anyone.
    let gone = LiveTrack { missed: 1, ..track(2, 90.0, 2, 0.8) };
    let steps = plan_tracks(&[track(1, 0.0, 2, 0.8), gone], &[sighting(0.0, 0.8, 0)], &policy);
    assert_eq!(steps, vec![TrackStep::Keep(0)]);
}

#[test]
fn a_re_embedded_face_far_from_the_track_s_embedding_is_someone_else() {
    let policy = TrackPolicy::default();
    let measured = track(1, 0.0, 0, 0.8).measured.unwrap();
    assert!(same_person(&measured, &[0.9, 0.1], &policy));
    assert!(!same_person(&measured, &[0.1, 0.9], &policy));
    assert!(!same_person(&measured, &[], &policy), "an embedding of another model is no evidence");
    assert_eq!(measured.age(5, 1300), (4, 300));
}

#[test]
fn one_track_is_continued_once_by_the_best_overlap() {
    let tracks = [track(1, 0.0, 0, 0.8)];
    let steps = plan_tracks(&tracks, &[sighting(30.0, 0.8, 0), sighting(2.0, 0.8, 0)], &TrackPolicy::default());
    // The two detections overlap each other: the continued one is checked again.
    assert_eq!(steps, vec![TrackStep::New, TrackStep::Recheck(0)]);
}

#[test]
fn missed_tracks_are_kept_a_few_frames_then_forgotten() {
    let policy = TrackPolicy { keep_missed: 1, ..TrackPolicy::default() };
    let kept =
        carry_tracks(vec![track(1, 0.0, 0, 0.8), track(2, 300.0, 0, 0.8)], &[0], vec![track(1, 1.0, 1, 0.8)], &policy);
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
    assert_eq!(serde_json::to_value(LiveErrorCode::ServerBusy).unwrap(), "server_busy");
}
