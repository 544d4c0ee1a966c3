//! Face quality: what we measure on every detected face, and the gates that
//! keep faces which would poison a gallery out of it.

use serde::{Deserialize, Serialize};

use crate::JobErrorCode;

/// Measurements of one detected face that predict how useful its embedding is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FaceQuality {
    /// Distance between the eye centres, in pixels of the uploaded image.
    #[serde(serialize_with = "crate::float::f32_short")]
    pub inter_eye_distance: f32,
    /// Variance of the Laplacian of the aligned 112×112 grayscale crop; low means blurred.
    #[serde(serialize_with = "crate::float::f32_short")]
    pub sharpness: f32,
    /// How far the nose tip sits off the line from the eyes' to the mouth's
    /// midpoint, in inter-eye distances: about 0 when frontal, growing as the
    /// head turns (roughly 0.2 at 30°, 0.4 at 45°).
    #[serde(serialize_with = "crate::float::f32_short")]
    pub pose_offset: f32,
    /// Share of the face inside the image, from 0 to 1: of its box, or of its
    /// five landmarks when fewer of them are inside.
    #[serde(serialize_with = "crate::float::f32_short")]
    pub visible_fraction: f32,
}

/// Recognize's default size gate, lower than register's: measured with the
/// labelled portraits shrunk on a 1920x1280 canvas (crates/vision/tests/small_faces.rs),
/// identification at threshold 0.4 holds 90-100 % for faces 24 px wide and up
/// (eyes 8.2-12.5 px apart at 24 px) and collapses below 20 px (31 % at 16 px,
/// eyes 5-8 px), with no wrong person matched at any size. 8 px keeps every
/// face from 24 px up; each face's `quality` lets clients be stricter.
pub const RECOGNIZE_MIN_INTER_EYE_DISTANCE: f32 = 8.0;

/// Thresholds a face must pass to be registered. Recognize applies only the
/// size gate (smaller faces are skipped) and reports the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityGates {
    pub min_inter_eye_distance: f32,
    pub min_detection_score: f32,
    pub min_sharpness: f32,
    pub max_pose_offset: f32,
    pub min_visible_fraction: f32,
}

impl Default for QualityGates {
    /// Chosen from the test photos; see "Quality" in docs/api.md, "API (v1)".
    fn default() -> Self {
        Self {
            min_inter_eye_distance: 20.0,
            min_detection_score: 0.75,
            min_sharpness: 60.0,
            max_pose_offset: 0.35,
            min_visible_fraction: 0.85,
        }
    }
}

/// Why a face was refused: a stable code and a message with the measured value.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityIssue {
    pub code: JobErrorCode,
    pub message: String,
}

/// `value < min`, and a NaN measurement fails too.
fn below(value: f32, min: f32) -> bool {
    value.is_nan() || value < min
}

impl QualityGates {
    /// The size gate alone: faces below it are too small to embed reliably.
    pub fn too_small(&self, quality: &FaceQuality) -> Option<QualityIssue> {
        below(quality.inter_eye_distance, self.min_inter_eye_distance).then(|| QualityIssue {
            code: JobErrorCode::FaceTooSmall,
            message: format!(
                "the face is too small: its eyes are {:.1} px apart, the minimum is {} px",
                quality.inter_eye_distance, self.min_inter_eye_distance
            ),
        })
    }

    /// Every gate, in a fixed order; the first that fails is reported.
    pub fn check(&self, quality: &FaceQuality, detection_score: f32) -> Result<(), QualityIssue> {
        let issue = |code, message| Err(QualityIssue { code, message });
        if below(quality.visible_fraction, self.min_visible_fraction) {
            return issue(
                JobErrorCode::FaceCutOff,
                format!(
                    "the face is cut off by the image border: {:.0}% of it is visible, the minimum is {:.0}%",
                    quality.visible_fraction * 100.0,
                    self.min_visible_fraction * 100.0
                ),
            );
        }
        if let Some(too_small) = self.too_small(quality) {
            return Err(too_small);
        }
        if below(detection_score, self.min_detection_score) {
            return issue(
                JobErrorCode::LowDetectionScore,
                format!(
                    "the detector is unsure this is a face: score {detection_score:.3}, the minimum is {}",
                    self.min_detection_score
                ),
            );
        }
        if quality.pose_offset.is_nan() || quality.pose_offset > self.max_pose_offset {
            return issue(
                JobErrorCode::FaceTurnedAway,
                format!(
                    "the face is turned away: pose offset {:.3}, the maximum is {}",
                    quality.pose_offset, self.max_pose_offset
                ),
            );
        }
        if below(quality.sharpness, self.min_sharpness) {
            return issue(
                JobErrorCode::FaceBlurred,
                format!(
                    "the face is blurred: sharpness {:.1}, the minimum is {}",
                    quality.sharpness, self.min_sharpness
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: FaceQuality =
        FaceQuality { inter_eye_distance: 80.0, sharpness: 300.0, pose_offset: 0.05, visible_fraction: 1.0 };

    fn code(q: FaceQuality, score: f32) -> Option<JobErrorCode> {
        QualityGates::default().check(&q, score).err().map(|i| i.code)
    }

    #[test]
    fn a_good_face_passes() {
        assert_eq!(code(GOOD, 0.9), None);
    }

    #[test]
    fn each_gate_has_its_code_and_names_the_value() {
        assert_eq!(code(FaceQuality { visible_fraction: 0.6, ..GOOD }, 0.9), Some(JobErrorCode::FaceCutOff));
        assert_eq!(code(FaceQuality { inter_eye_distance: 12.0, ..GOOD }, 0.9), Some(JobErrorCode::FaceTooSmall));
        assert_eq!(code(GOOD, 0.65), Some(JobErrorCode::LowDetectionScore));
        assert_eq!(code(FaceQuality { pose_offset: 0.5, ..GOOD }, 0.9), Some(JobErrorCode::FaceTurnedAway));
        assert_eq!(code(FaceQuality { sharpness: 10.0, ..GOOD }, 0.9), Some(JobErrorCode::FaceBlurred));
        let issue = QualityGates::default().check(&FaceQuality { inter_eye_distance: 12.34, ..GOOD }, 0.9).unwrap_err();
        assert!(issue.message.contains("12.3 px") && issue.message.contains("20 px"), "{}", issue.message);
    }

    #[test]
    fn nan_measurements_fail_their_gate() {
        assert_eq!(code(FaceQuality { sharpness: f32::NAN, ..GOOD }, 0.9), Some(JobErrorCode::FaceBlurred));
        assert_eq!(code(GOOD, f32::NAN), Some(JobErrorCode::LowDetectionScore));
    }

    #[test]
    fn thresholds_are_inclusive_limits() {
        let g = QualityGates::default();
        let edge = FaceQuality {
            inter_eye_distance: g.min_inter_eye_distance,
            sharpness: g.min_sharpness,
            pose_offset: g.max_pose_offset,
            visible_fraction: g.min_visible_fraction,
        };
        assert_eq!(g.check(&edge, g.min_detection_score), Ok(()));
    }
}
