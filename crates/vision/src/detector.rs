use facerec_core::BBox;
use image::RgbImage;

use crate::VisionError;

/// One detected face, in pixel coordinates of the image given to the detector.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub bbox: BBox,
    pub score: f32,
    /// Eyes (image-left, image-right), nose tip, mouth corners (image-left, image-right).
    pub landmarks: [[f32; 2]; 5],
}

/// Finds faces and their five landmarks.
pub trait Detector: Send {
    /// Stable model identifier recorded with every embedding, e.g. `yunet_2023mar`.
    fn model_id(&self) -> &str;
    /// Faces sorted by score, highest first, after non-maximum suppression.
    fn detect(&mut self, image: &RgbImage) -> Result<Vec<Detection>, VisionError>;
}
