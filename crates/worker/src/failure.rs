//! Why a job (or a live frame) did not succeed, and so whether to retry it:
//! the one classification the handler acts on and every job kind returns.

use facerec_core::JobErrorCode;
use facerec_vision::VisionError;
use tracing::warn;

/// An error of ours, as the queue and the logs take it.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a job did not succeed, and so whether to retry it.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The input is at fault: fail the job now with this code.
    Permanent(JobErrorCode, String),
    /// Our side failed: try again later.
    Transient(BoxError),
}

impl From<facerec_store::StoreError> for Failure {
    fn from(e: facerec_store::StoreError) -> Self {
        Self::Transient(Box::new(e))
    }
}

impl Failure {
    /// A job's collection is gone: it was deleted after the api checked it at
    /// submission. Failing says so; answering "nobody" would be a wrong answer.
    pub(crate) fn collection_deleted(collection: &facerec_core::CollectionName) -> Self {
        let message =
            format!("no collection is named {}: it was deleted after the job was submitted", collection.as_str());
        Self::Permanent(JobErrorCode::CollectionNotFound, message)
    }
}

/// What a client is told about an image that does not decode (a job's, a
/// batch item's or a live frame's error message).
pub(crate) const UNDECODABLE: &str = "the image cannot be decoded: it is damaged or cut short";

impl From<VisionError> for Failure {
    fn from(e: VisionError) -> Self {
        match &e {
            VisionError::Decode(source) => {
                // The decoder's own words name its internals: they go to the log, not to the client.
                warn!(error = %source, "the image does not decode");
                Self::Permanent(JobErrorCode::CorruptImage, UNDECODABLE.to_owned())
            }
            VisionError::TooLarge(_) | VisionError::OverMemoryLimit(_) => {
                Self::Permanent(JobErrorCode::ImageTooLarge, e.to_string())
            }
            _ => Self::Transient(Box::new(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undecodable_image_fails_in_plain_words_not_the_decoders() {
        let internals = std::io::Error::other("Found a marker with invalid length:0\n");
        let failure = Failure::from(VisionError::Decode(image::ImageError::IoError(internals)));
        let Failure::Permanent(code, message) = failure else { panic!("bad input is permanent") };
        assert_eq!((code, message.as_str()), (JobErrorCode::CorruptImage, UNDECODABLE));
    }
}
