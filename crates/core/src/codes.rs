//! Why a job failed: the stable codes clients branch on.

use crate::job::text_enum;

text_enum!(
    /// Stable, machine-readable reasons a job failed. Clients branch on these;
    /// never rename one, only add.
    JobErrorCode, "job error code", {
        /// Register: no face was found in the photo.
        NoFace => "no_face",
        /// Register: more than one face was found; the subject would be ambiguous.
        MultipleFaces => "multiple_faces",
        /// The upload could not be decoded as an image.
        CorruptImage => "corrupt_image",
        /// The image has more pixels than the configured limit.
        ImageTooLarge => "image_too_large",
        /// Register: the face's eyes are closer together than the minimum (too few pixels).
        FaceTooSmall => "face_too_small",
        /// Register: the detector's score is below the register minimum.
        LowDetectionScore => "low_detection_score",
        /// Register: the aligned face is too blurred (variance of the Laplacian).
        FaceBlurred => "face_blurred",
        /// Register: the head is turned too far from frontal (landmark geometry).
        FaceTurnedAway => "face_turned_away",
        /// Register: too much of the face lies outside the image.
        FaceCutOff => "face_cut_off",
        /// Register: the collection holds faces of another embedder; vectors are never mixed.
        /// Verify: the face compared with was made by another embedder.
        EmbedderMismatch => "embedder_mismatch",
        /// Verify: the subject to compare with does not exist.
        SubjectNotFound => "subject_not_found",
        /// Verify: the subject to compare with has no faces.
        SubjectHasNoFaces => "subject_has_no_faces",
        /// Verify: the face to compare with does not exist.
        FaceNotFound => "face_not_found",
        /// Recognize, verify against a subject: the collection was deleted after
        /// the job was submitted (a search there would answer "nobody").
        CollectionNotFound => "collection_not_found",
        /// The job failed for a reason on our side, after all retries.
        #[serde(rename = "internal_error")]
        Internal => "internal_error",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_matches_json_and_parses_back() {
        assert_eq!(JobErrorCode::ALL.len(), 15);
        for code in JobErrorCode::ALL {
            assert_eq!(serde_json::to_string(code).unwrap(), format!("\"{code}\""));
            assert_eq!(code.as_str().parse::<JobErrorCode>().unwrap(), *code);
            assert_eq!(serde_json::from_str::<JobErrorCode>(&format!("\"{code}\"")).unwrap(), *code);
        }
        assert_eq!(JobErrorCode::Internal.as_str(), "internal_error");
        assert!("internal".parse::<JobErrorCode>().is_err());
    }
}
