use serde::{Deserialize, Serialize};

/// Stable, machine-readable reasons a job failed. Clients branch on these;
/// never rename one, only add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobErrorCode {
    /// Register: no face was found in the photo.
    NoFace,
    /// Register: more than one face was found; the subject would be ambiguous.
    MultipleFaces,
    /// The upload could not be decoded as an image.
    CorruptImage,
    /// The image has more pixels than the configured limit.
    ImageTooLarge,
    /// Register: the face's eyes are closer together than the minimum (too few pixels).
    FaceTooSmall,
    /// Register: the detector's score is below the register minimum.
    LowDetectionScore,
    /// Register: the aligned face is too blurred (variance of the Laplacian).
    FaceBlurred,
    /// Register: the head is turned too far from frontal (landmark geometry).
    FaceTurnedAway,
    /// Register: too much of the face lies outside the image.
    FaceCutOff,
    /// Register: the collection holds faces of another embedder; vectors are never mixed.
    /// Verify: the face compared with was made by another embedder.
    EmbedderMismatch,
    /// Verify: the subject to compare with does not exist.
    SubjectNotFound,
    /// Verify: the subject to compare with has no faces.
    SubjectHasNoFaces,
    /// Verify: the face to compare with does not exist.
    FaceNotFound,
    /// Recognize, verify against a subject: the collection was deleted after
    /// the job was submitted (a search there would answer "nobody").
    CollectionNotFound,
    /// The job failed for a reason on our side, after all retries.
    #[serde(rename = "internal_error")]
    Internal,
}

impl JobErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoFace => "no_face",
            Self::MultipleFaces => "multiple_faces",
            Self::CorruptImage => "corrupt_image",
            Self::ImageTooLarge => "image_too_large",
            Self::FaceTooSmall => "face_too_small",
            Self::LowDetectionScore => "low_detection_score",
            Self::FaceBlurred => "face_blurred",
            Self::FaceTurnedAway => "face_turned_away",
            Self::FaceCutOff => "face_cut_off",
            Self::EmbedderMismatch => "embedder_mismatch",
            Self::SubjectNotFound => "subject_not_found",
            Self::SubjectHasNoFaces => "subject_has_no_faces",
            Self::FaceNotFound => "face_not_found",
            Self::CollectionNotFound => "collection_not_found",
            Self::Internal => "internal_error",
        }
    }
}

impl std::fmt::Display for JobErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_json() {
        for code in [
            JobErrorCode::NoFace,
            JobErrorCode::MultipleFaces,
            JobErrorCode::CorruptImage,
            JobErrorCode::ImageTooLarge,
            JobErrorCode::FaceTooSmall,
            JobErrorCode::LowDetectionScore,
            JobErrorCode::FaceBlurred,
            JobErrorCode::FaceTurnedAway,
            JobErrorCode::FaceCutOff,
            JobErrorCode::EmbedderMismatch,
            JobErrorCode::SubjectNotFound,
            JobErrorCode::SubjectHasNoFaces,
            JobErrorCode::FaceNotFound,
            JobErrorCode::CollectionNotFound,
            JobErrorCode::Internal,
        ] {
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{code}\""));
        }
    }
}
