use std::path::PathBuf;
use std::time::Duration;

use image::RgbImage;

use crate::{
    CenterFace, CenterFaceConfig, Detection, Detector, Embedder, SFace, SharedEmbedder, VisionError, YuNet,
    YuNetConfig, align_face, init_runtime,
};

/// Which detector to run, with its settings.
#[derive(Debug, Clone, Copy)]
pub enum DetectorChoice {
    YuNet(YuNetConfig),
    CenterFace(CenterFaceConfig),
}

/// Where the runtime and models are, and how hard to work.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub runtime_library: PathBuf,
    /// The model file of the chosen detector.
    pub detector_model: PathBuf,
    pub embedder_model: PathBuf,
    pub detector: DetectorChoice,
    /// Intra-op threads for the embedder session.
    pub intra_threads: usize,
    /// Most faces of one photo embedded in one model run. 1 (one at a time)
    /// is fastest on CPU; batches are for accelerators.
    pub embed_batch: usize,
    /// Pipelines loaded together ([`FacePipeline::load_many`]) share one
    /// embedder, which embeds the faces of concurrent jobs in one run of at
    /// most this many crops; 0: each pipeline embeds its own faces.
    pub shared_embed_batch: usize,
    /// How long the shared embedder waits for more faces after the first.
    pub shared_embed_wait: Duration,
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
        let embedder = SFace::load(&env, &config.embedder_model, config.intra_threads, config.embed_batch)?;
        Ok(Self::new(load_detector(&env, config)?, Box::new(embedder)))
    }

    /// `count` pipelines, one per thread that will run them. With
    /// `shared_embed_batch` set they share one embedder on a thread of its own
    /// (with the intra-op threads of all of them), each keeping its detector.
    pub fn load_many(config: &PipelineConfig, count: usize) -> Result<Vec<Self>, VisionError> {
        let count = count.max(1);
        if config.shared_embed_batch == 0 {
            return (0..count).map(|_| Self::load(config)).collect();
        }
        let env = init_runtime(&config.runtime_library)?;
        let threads = config.intra_threads.max(1) * count;
        let sface = SFace::load(&env, &config.embedder_model, threads, config.shared_embed_batch)?;
        let shared = SharedEmbedder::start(Box::new(sface), config.shared_embed_batch, config.shared_embed_wait);
        (0..count).map(|_| Ok(Self::new(load_detector(&env, config)?, Box::new(shared.clone())))).collect()
    }

    pub fn new(detector: Box<dyn Detector>, embedder: Box<dyn Embedder>) -> Self {
        let model_id = format!("{}+{}", detector.model_id(), embedder.model_id());
        Self { detector, embedder, model_id }
    }

    /// Identifies the detector + embedder pair (`detector+embedder`).
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn detector_id(&self) -> &str {
        self.detector.model_id()
    }

    /// Embeddings are only comparable between faces embedded by the same embedder.
    pub fn embedder_id(&self) -> &str {
        self.embedder.model_id()
    }

    /// Every face, largest box first.
    pub fn detect(&mut self, image: &RgbImage) -> Result<Vec<Detection>, VisionError> {
        let mut faces = self.detector.detect(image)?;
        faces.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
        Ok(faces)
    }

    /// The face cropped and aligned the way the embedder expects.
    pub fn align(&self, image: &RgbImage, face: &Detection) -> RgbImage {
        align_face(image, &face.landmarks, self.embedder.template())
    }

    /// The L2-normalised embedding of an aligned crop.
    pub fn embed_aligned(&mut self, crop: &RgbImage) -> Result<Vec<f32>, VisionError> {
        self.embedder.embed(crop)
    }

    /// The embeddings of several aligned crops, in order, in as few model runs
    /// as the embedder allows (equal to embedding them one by one).
    pub fn embed_aligned_batch(&mut self, crops: &[RgbImage]) -> Result<Vec<Vec<f32>>, VisionError> {
        self.embedder.embed_batch(crops)
    }

    /// Aligns one detected face and returns its L2-normalised embedding.
    pub fn embed(&mut self, image: &RgbImage, face: &Detection) -> Result<Vec<f32>, VisionError> {
        let crop = self.align(image, face);
        self.embedder.embed(&crop)
    }
}

fn load_detector(
    env: &ort::environment::Environment,
    config: &PipelineConfig,
) -> Result<Box<dyn Detector>, VisionError> {
    Ok(match config.detector {
        DetectorChoice::YuNet(c) => Box::new(YuNet::load(env, &config.detector_model, c)?),
        DetectorChoice::CenterFace(c) => Box::new(CenterFace::load(env, &config.detector_model, c)?),
    })
}
