//! Face vision: image decoding, face detection (YuNet), 5-point alignment and
//! face embedding (SFace), on ONNX Runtime through `ort`.
//!
//! Threading model: everything here is synchronous and CPU-bound, with no I/O
//! beyond loading model files at start. A [`FacePipeline`] owns its ONNX
//! sessions and needs `&mut self` to run; callers keep one per worker thread
//! (or a pool of them) and call it from blocking threads, never from an async task.

mod align;
mod decode;
mod detector;
mod embedder;
mod error;
mod pipeline;
mod resize;
mod runtime;
mod sface;
pub mod yunet;

pub use align::{FaceTemplate, SFACE_TEMPLATE, Similarity, align_face, estimate_similarity, warp_affine};
pub use decode::{DecodeLimits, decode_image};
pub use detector::{Detection, Detector};
pub use embedder::{Embedder, l2_normalize};
pub use error::VisionError;
pub use pipeline::{FacePipeline, PipelineConfig};
pub use resize::resize_linear;
pub use runtime::init_runtime;
pub use sface::SFace;
pub use yunet::{YuNet, YuNetConfig};
