//! SFace (OpenCV model zoo, 2021dec): 112×112 aligned RGB face → 128-d embedding.

use std::path::Path;

use image::RgbImage;
use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;

use crate::runtime::load_session;
use crate::{Embedder, FaceTemplate, SFACE_TEMPLATE, VisionError, l2_normalize, tensor};

const MODEL: &str = "sface_2021dec";
const SIZE: u32 = SFACE_TEMPLATE.size;

pub struct SFace {
    session: Session,
    input_name: String,
    /// Crops per model run: 1 when asked for, or when the model fixes its
    /// batch dimension at 1 (the published file).
    batch: usize,
}

impl SFace {
    /// `batch`: most crops per model run in [`Embedder::embed_batch`].
    pub fn load(env: &Environment, path: &Path, intra_threads: usize, batch: usize) -> Result<Self, VisionError> {
        let session = load_session(env, path, intra_threads)?;
        let input = &session.inputs()[0];
        let input_name = input.name().to_owned();
        let fixed_at_one = input.dtype().tensor_shape().is_some_and(|shape| shape.first() == Some(&1));
        let batch = if fixed_at_one { 1 } else { batch.max(1) };
        Ok(Self { session, input_name, batch })
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
        let mut embeddings = self.run(std::slice::from_ref(aligned))?;
        Ok(embeddings.remove(0))
    }

    /// One run per `batch` crops (one by one with a batch of 1).
    fn embed_batch(&mut self, aligned: &[RgbImage]) -> Result<Vec<Vec<f32>>, VisionError> {
        let mut out = Vec::with_capacity(aligned.len());
        for chunk in aligned.chunks(self.batch) {
            out.extend(self.run(chunk)?);
        }
        Ok(out)
    }
}

impl SFace {
    /// Runs the model once on `crops` (at least one), returning one
    /// L2-normalised embedding per crop.
    fn run(&mut self, crops: &[RgbImage]) -> Result<Vec<Vec<f32>>, VisionError> {
        if let Some(crop) = crops.iter().find(|c| c.dimensions() != (SIZE, SIZE)) {
            return Err(VisionError::UnexpectedOutput {
                model: MODEL,
                detail: format!("crop is {:?}, expected {SIZE}x{SIZE}", crop.dimensions()),
            });
        }
        // RGB in 0..255, no mean or scale: what OpenCV's FaceRecognizerSF feeds it.
        let tensors: Vec<_> =
            crops.iter().map(|c| tensor::nchw(c, SIZE as usize, SIZE as usize, tensor::RGB)).collect();
        let views: Vec<_> = tensors.iter().map(|t| t.view()).collect();
        let input = ndarray::concatenate(ndarray::Axis(0), &views).map_err(|e| VisionError::UnexpectedOutput {
            model: MODEL,
            detail: format!("cannot batch the crops: {e}"),
        })?;
        let tensor = TensorRef::from_array_view(&input).map_err(inference)?;
        let outputs = self.session.run(ort::inputs![self.input_name.as_str() => tensor]).map_err(inference)?;
        let (_, data) = outputs[0].try_extract_tensor::<f32>().map_err(inference)?;
        let dim = facerec_core::EMBEDDING_DIM;
        if data.len() != dim * crops.len() || data.iter().any(|v| !v.is_finite()) {
            return Err(VisionError::UnexpectedOutput {
                model: MODEL,
                detail: format!(
                    "{} values for {} crops (finite: {})",
                    data.len(),
                    crops.len(),
                    data.iter().all(|v| v.is_finite())
                ),
            });
        }
        Ok(data
            .chunks(dim)
            .map(|values| {
                let mut embedding = values.to_vec();
                l2_normalize(&mut embedding);
                embedding
            })
            .collect())
    }
}
