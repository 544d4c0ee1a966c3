//! Face vision: image decoding, face detection (YuNet by default, CenterFace
//! as an alternative), 5-point alignment, quality measures and face embedding
//! (SFace), on ONNX Runtime through `ort`. Preprocessing and alignment
//! reproduce OpenCV's reference pipeline for these models pixel for pixel.
//!
//! Threading model: everything here is synchronous and CPU-bound, with no I/O
//! beyond loading model files at start. A [`FacePipeline`] owns its ONNX
//! sessions and needs `&mut self` to run; callers keep one per worker thread
//! (or a pool of them) and call it from blocking threads, never from an async task.

mod align;
mod batcher;
pub mod centerface;
mod decode;
mod detector;
mod embedder;
mod error;
mod pipeline;
mod quality;
mod resize;
mod runtime;
mod sface;
mod tensor;
pub mod yunet;

pub use align::{FaceTemplate, SFACE_TEMPLATE, Similarity, align_face, estimate_similarity, warp_affine};
pub use batcher::SharedEmbedder;
pub use centerface::{CenterFace, CenterFaceConfig};
pub use decode::{DecodeLimits, decode_image};
pub use detector::{Detection, Detector};
pub use embedder::{Embedder, l2_normalize};
pub use error::VisionError;
pub use pipeline::{DetectorChoice, FacePipeline, PipelineConfig};
pub use quality::{
    inter_eye_distance, landmarks_inside, laplacian_variance, measure_quality, pose_offset, visible_fraction,
};
pub use resize::resize_linear;
pub use runtime::init_runtime;
pub use sface::SFace;
pub use yunet::{YuNet, YuNetConfig};
