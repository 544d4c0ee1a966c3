use std::path::PathBuf;

/// Everything that can go wrong between bytes and an embedding.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// The bytes are not a decodable image (corrupt, truncated, unknown format).
    #[error("cannot decode image")]
    Decode(#[source] image::ImageError),
    /// Over `FACEREC_MAX_PIXELS`, or far more pixels than the file's size
    /// allows (`FACEREC_MAX_PIXELS_PER_BYTE`): the api's rule, read from the header.
    #[error(transparent)]
    TooLarge(#[from] facerec_core::ImageTooLarge),
    /// Decoding would need more memory than the decoder may allocate.
    #[error("decoding the image would exceed the decoder's memory limit")]
    OverMemoryLimit(#[source] image::ImageError),
    #[error("cannot load ONNX Runtime from {path}")]
    RuntimeLoad {
        path: PathBuf,
        #[source]
        source: ort::LoadDynamicError,
    },
    #[error("cannot load model {path}")]
    ModelLoad {
        path: PathBuf,
        #[source]
        source: ort::Error,
    },
    #[error("inference failed in {model}")]
    Inference {
        model: &'static str,
        #[source]
        source: ort::Error,
    },
    #[error("{model} produced unexpected output: {detail}")]
    UnexpectedOutput { model: &'static str, detail: String },
    /// The embedder shared by a process's pipelines failed (its error, as text)
    /// or has stopped.
    #[error("shared embedder: {0}")]
    SharedEmbedder(String),
}

impl VisionError {
    /// True when the input itself is at fault, so retrying cannot help.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::Decode(_) | Self::TooLarge(_) | Self::OverMemoryLimit(_))
    }
}
