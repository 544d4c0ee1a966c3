//! Job results as returned by `GET /v1/jobs/{id}` (and stored in `jobs.result`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A face box in pixels of the uploaded image as decoded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterResult {
    pub subject: String,
    pub collection: String,
    pub face_id: Uuid,
    pub bbox: BBox,
    #[serde(serialize_with = "crate::float::f32_short")]
    pub detection_score: f32,
    /// Eyes (image-left, image-right), nose tip, mouth corners (image-left, image-right).
    #[serde(serialize_with = "crate::float::points_short")]
    pub landmarks: [[f32; 2]; 5],
    /// Which detector and embedder produced the stored embedding.
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceMatch {
    pub subject: String,
    pub face_id: Uuid,
    /// Cosine similarity in [-1, 1]; higher is more alike.
    #[serde(serialize_with = "crate::float::f32_short")]
    pub similarity: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestMatch {
    pub subject: String,
    #[serde(serialize_with = "crate::float::f32_short")]
    pub similarity: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecognizedFace {
    pub bbox: BBox,
    #[serde(serialize_with = "crate::float::f32_short")]
    pub detection_score: f32,
    /// Sorted by similarity, highest first; at most `top_k`.
    pub matches: Vec<FaceMatch>,
    /// The top match when it reaches the threshold, else `null`.
    pub best: Option<BestMatch>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecognizeResult {
    /// One entry per detected face, largest first.
    pub faces: Vec<RecognizedFace>,
    #[serde(serialize_with = "crate::float::f32_short")]
    pub threshold: f32,
    pub model: String,
}

impl RecognizedFace {
    /// Builds a face entry from matches already sorted by similarity.
    pub fn new(bbox: BBox, detection_score: f32, matches: Vec<FaceMatch>, threshold: f32) -> Self {
        let best = matches
            .first()
            .filter(|m| m.similarity >= threshold)
            .map(|m| BestMatch { subject: m.subject.clone(), similarity: m.similarity });
        Self { bbox, detection_score, matches, best }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(subject: &str, similarity: f32) -> FaceMatch {
        FaceMatch { subject: subject.into(), face_id: Uuid::nil(), similarity }
    }

    #[test]
    fn best_is_the_top_match_only_at_or_above_threshold() {
        let b = BBox { x: 0.0, y: 0.0, width: 1.0, height: 1.0 };
        let face = RecognizedFace::new(b, 0.9, vec![m("ada", 0.5), m("bob", 0.4)], 0.5);
        assert_eq!(face.best, Some(BestMatch { subject: "ada".into(), similarity: 0.5 }));
        let face = RecognizedFace::new(b, 0.9, vec![m("ada", 0.49)], 0.5);
        assert_eq!(face.best, None);
        let face = RecognizedFace::new(b, 0.9, vec![], -1.0);
        assert_eq!(face.best, None);
    }
}
