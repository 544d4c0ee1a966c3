//! SFace (OpenCV model zoo, 2021dec): 112×112 aligned RGB face → 128-d embedding.

use std::path::Path;

use image::RgbImage;
use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

use crate::{Embedder, FaceTemplate, SFACE_TEMPLATE, VisionError, l2_normalize, tensor};

const MODEL: &str = "sface_2021dec";
const SIZE: u32 = SFACE_TEMPLATE.size;

/// Opens an ONNX model with a fixed intra-op thread count. Sequential execution
/// and full graph optimisation: deterministic and fastest for these small models.
pub(crate) fn load_session(env: &Environment, path: &Path, threads: usize) -> Result<Session, VisionError> {
    let err = |source| VisionError::ModelLoad { path: path.to_owned(), source };
    Session::builder(env)
        .map_err(err)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| err(e.into()))?
        .with_intra_threads(threads.max(1))
        .map_err(|e| err(e.into()))?
        .commit_from_file(path)
        .map_err(err)
}

pub struct SFace {
    session: Session,
    input_name: String,
}

impl SFace {
    pub fn load(env: &Environment, path: &Path, intra_threads: usize) -> Result<Self, VisionError> {
        let session = load_session(env, path, intra_threads)?;
        let input_name = session.inputs()[0].name().to_owned();
        Ok(Self { session, input_name })
    }
}

fn inference(source: ort::Error) -> VisionError {
    VisionError::Inference { model: MODEL, source }
}

impl Embedder for SFace {
    fn model_id(&self) -> &str {
        MODEL
    }

    fn template(&self) -> &FaceTemplate {
        &SFACE_TEMPLATE
    }

    fn embed(&mut self, aligned: &RgbImage) -> Result<Vec<f32>, VisionError> {
        if aligned.dimensions() != (SIZE, SIZE) {
            return Err(VisionError::UnexpectedOutput {
                model: MODEL,
                detail: format!("crop is {:?}, expected {SIZE}x{SIZE}", aligned.dimensions()),
            });
        }
        // RGB in 0..255, no mean or scale: what OpenCV's FaceRecognizerSF feeds it.
        let input = tensor::nchw(aligned, SIZE as usize, SIZE as usize, tensor::RGB);
        let tensor = TensorRef::from_array_view(&input).map_err(inference)?;
        let outputs = self.session.run(ort::inputs![self.input_name.as_str() => tensor]).map_err(inference)?;
        let (_, data) = outputs[0].try_extract_tensor::<f32>().map_err(inference)?;
        if data.len() != facerec_core::EMBEDDING_DIM || data.iter().any(|v| !v.is_finite()) {
            return Err(VisionError::UnexpectedOutput {
                model: MODEL,
                detail: format!("embedding of {} values (finite: {})", data.len(), data.iter().all(|v| v.is_finite())),
            });
        }
        let mut embedding = data.to_vec();
        l2_normalize(&mut embedding);
        Ok(embedding)
    }
}
