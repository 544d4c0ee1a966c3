use serde::{Deserialize, Serialize};

/// Stable, machine-readable reasons a job failed. Clients branch on these;
/// never rename one, only add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
            JobErrorCode::Internal,
        ] {
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{code}\""));
        }
    }
}
