//! Job results as returned by `GET /v1/jobs/{id}` (and stored in `jobs.result`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::FaceQuality;

/// A face box in pixels of the uploaded image as decoded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BBox {
    #[serde(serialize_with = "crate::float::f32_short")]
    pub x: f32,
    #[serde(serialize_with = "crate::float::f32_short")]
    pub y: f32,
    #[serde(serialize_with = "crate::float::f32_short")]
    pub width: f32,
    #[serde(serialize_with = "crate::float::f32_short")]
    pub height: f32,
}

impl BBox {
    pub fn area(&self) -> f32 {
        self.width.max(0.0) * self.height.max(0.0)
    }

    /// Intersection over union, in [0, 1]; 0 for disjoint or empty boxes.
    pub fn iou(&self, other: &BBox) -> f32 {
        let ix = ((self.x + self.width).min(other.x + other.width) - self.x.max(other.x)).max(0.0);
        let iy = ((self.y + self.height).min(other.y + other.height) - self.y.max(other.y)).max(0.0);
        let inter = ix * iy;
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
}

/// What we found about one face: where it is, how sure the detector is, and its quality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FaceInfo {
    pub bbox: BBox,
    #[serde(serialize_with = "crate::float::f32_short")]
    pub detection_score: f32,
    /// Eyes (image-left, image-right), nose tip, mouth corners (image-left, image-right).
    #[serde(serialize_with = "crate::float::points_short")]
    pub landmarks: [[f32; 2]; 5],
    pub quality: FaceQuality,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegisterResult {
    pub subject: String,
    pub collection: String,
    pub face_id: Uuid,
    #[serde(flatten)]
    pub face: FaceInfo,
    /// Which detector and embedder produced the stored embedding (`detector+embedder`).
    pub model: String,
    /// The subject already had a face from this very image (same bytes):
    /// `face_id` names that face and nothing new was stored.
    #[serde(default)]
    pub already_registered: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FaceMatch {
    pub subject: String,
    pub face_id: Uuid,
    /// Cosine similarity in [-1, 1]; higher is more alike.
    #[serde(serialize_with = "crate::float::f32_short")]
    pub similarity: f32,
    /// Whether `similarity` reaches the job's threshold: the same person.
    #[serde(rename = "match")]
    pub is_match: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BestMatch {
    pub subject: String,
    #[serde(serialize_with = "crate::float::f32_short")]
    pub similarity: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecognizedFace {
    #[serde(flatten)]
    pub face: FaceInfo,
    /// Sorted by similarity, highest first; at most `top_k`.
    pub matches: Vec<FaceMatch>,
    /// The top match when it reaches the threshold, else `null`.
    pub best: Option<BestMatch>,
}

/// Why a detected face was not searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Below recognize's minimum size: eyes closer than `FACEREC_RECOGNIZE_MIN_INTER_EYE_PX` (8 px by default).
    FaceTooSmall,
    /// Beyond the job's `max_faces` largest faces.
    OverMaxFaces,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SkippedFace {
    pub bbox: BBox,
    #[serde(serialize_with = "crate::float::f32_short")]
    pub detection_score: f32,
    pub reason: SkipReason,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecognizeResult {
    /// One entry per searched face, largest first.
    pub faces: Vec<RecognizedFace>,
    /// Faces found but not searched, largest first.
    pub skipped: Vec<SkippedFace>,
    #[serde(serialize_with = "crate::float::f32_short")]
    pub threshold: f32,
    pub model: String,
}

impl RecognizedFace {
    /// Builds a face entry from matches already sorted by similarity, marking
    /// those at or above `threshold`.
    pub fn new(face: FaceInfo, mut matches: Vec<FaceMatch>, threshold: f32) -> Self {
        let best = BestMatch::mark(&mut matches, threshold);
        Self { face, matches, best }
    }
}

impl BestMatch {
    /// Marks the matches (sorted by similarity) at or above `threshold`, and
    /// returns the first if it is one.
    pub fn mark(matches: &mut [FaceMatch], threshold: f32) -> Option<BestMatch> {
        for m in matches.iter_mut() {
            m.is_match = m.similarity >= threshold;
        }
        matches
            .first()
            .filter(|m| m.is_match)
            .map(|m| BestMatch { subject: m.subject.clone(), similarity: m.similarity })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmbeddedFace {
    #[serde(flatten)]
    pub face: FaceInfo,
    /// L2-normalised, `EMBEDDING_DIM` values.
    #[serde(serialize_with = "crate::float::vec_short")]
    pub embedding: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmbedResult {
    /// Which detector and embedder produced the embeddings (`detector+embedder`);
    /// only embeddings of the same embedder are comparable.
    pub model: String,
    /// Largest first, at most `max_faces`.
    pub faces: Vec<EmbeddedFace>,
}

/// What a verify job compared its photo's face with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VerifiedAgainst {
    /// The largest usable face of the second photo (`image2`).
    Image { face: FaceInfo },
    /// A subject: its face most similar to the photo's counts.
    Subject { collection: String, subject: String, face_id: Uuid },
    /// One stored face.
    Face { collection: String, subject: String, face_id: Uuid },
}

/// The outcome of a 1:1 comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerifyResult {
    /// Cosine similarity in [-1, 1] between the two faces' embeddings.
    #[serde(serialize_with = "crate::float::f32_short")]
    pub similarity: f32,
    /// Whether `similarity` reaches `threshold`: the same person.
    #[serde(rename = "match")]
    pub is_match: bool,
    #[serde(serialize_with = "crate::float::f32_short")]
    pub threshold: f32,
    pub model: String,
    /// The largest usable face of the photo (`image`).
    pub face: FaceInfo,
    pub target: VerifiedAgainst,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(subject: &str, similarity: f32) -> FaceMatch {
        FaceMatch { subject: subject.into(), face_id: Uuid::nil(), similarity, is_match: false }
    }

    fn info() -> FaceInfo {
        FaceInfo {
            bbox: BBox { x: 0.0, y: 0.0, width: 1.0, height: 1.0 },
            detection_score: 0.9,
            landmarks: [[0.0; 2]; 5],
            quality: FaceQuality {
                inter_eye_distance: 50.0,
                sharpness: 100.0,
                pose_offset: 0.1,
                visible_fraction: 1.0,
            },
        }
    }

    #[test]
    fn best_is_the_top_match_only_at_or_above_threshold() {
        let face = RecognizedFace::new(info(), vec![m("ada", 0.5), m("bob", 0.4)], 0.5);
        assert_eq!(face.best, Some(BestMatch { subject: "ada".into(), similarity: 0.5 }));
        assert_eq!(face.matches.iter().map(|m| m.is_match).collect::<Vec<_>>(), [true, false]);
        let face = RecognizedFace::new(info(), vec![m("ada", 0.49)], 0.5);
        assert_eq!(face.best, None);
        let face = RecognizedFace::new(info(), vec![], -1.0);
        assert_eq!(face.best, None);
    }

    #[test]
    fn face_fields_are_flattened_and_match_is_named_match() {
        let face = RecognizedFace::new(info(), vec![m("ada", 0.7)], 0.5);
        let json = serde_json::to_value(&face).unwrap();
        assert_eq!(json["detection_score"], 0.9);
        assert_eq!(json["quality"]["pose_offset"], 0.1);
        assert_eq!(json["matches"][0]["match"], true);
        assert_eq!(serde_json::from_value::<RecognizedFace>(json).unwrap(), face);
    }
}
