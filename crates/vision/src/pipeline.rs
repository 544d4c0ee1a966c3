use std::path::PathBuf;

use image::RgbImage;

use crate::{Detection, Detector, Embedder, SFace, VisionError, YuNet, YuNetConfig, align_face, init_runtime};

/// Where the runtime and models are, and how hard to work.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub runtime_library: PathBuf,
    pub detector_model: PathBuf,
    pub embedder_model: PathBuf,
    pub detector: YuNetConfig,
    /// Intra-op threads for the embedder session.
    pub intra_threads: usize,
}

/// A detector and an embedder, loaded once and reused for every job.
pub struct FacePipeline {
    detector: Box<dyn Detector>,
    embedder: Box<dyn Embedder>,
    model_id: String,
}

impl FacePipeline {
    pub fn load(config: &PipelineConfig) -> Result<Self, VisionError> {
        let env = init_runtime(&config.runtime_library)?;
        let detector = YuNet::load(&env, &config.detector_model, config.detector)?;
        let embedder = SFace::load(&env, &config.embedder_model, config.intra_threads)?;
        Ok(Self::new(Box::new(detector), Box::new(embedder)))
    }

    pub fn new(detector: Box<dyn Detector>, embedder: Box<dyn Embedder>) -> Self {
        let model_id = format!("{}+{}", detector.model_id(), embedder.model_id());
        Self { detector, embedder, model_id }
    }

    /// Identifies the detector + embedder pair; embeddings are only comparable within one.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Every face, largest box first.
    pub fn detect(&mut self, image: &RgbImage) -> Result<Vec<Detection>, VisionError> {
        let mut faces = self.detector.detect(image)?;
        faces.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
        Ok(faces)
    }

    /// Aligns one detected face and returns its L2-normalised embedding.
    pub fn embed(&mut self, image: &RgbImage, face: &Detection) -> Result<Vec<f32>, VisionError> {
        let crop = align_face(image, &face.landmarks, self.embedder.template());
        self.embedder.embed(&crop)
    }
}
