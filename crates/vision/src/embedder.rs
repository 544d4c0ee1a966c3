use image::RgbImage;

use crate::{FaceTemplate, VisionError};

/// Turns an aligned face crop into an L2-normalised embedding.
pub trait Embedder: Send {
    /// Stable model identifier recorded with every embedding, e.g. `sface_2021dec`.
    fn model_id(&self) -> &str;
    /// The square crop the model expects and where the five landmarks must land in it.
    fn template(&self) -> &FaceTemplate;
    fn embed(&mut self, aligned: &RgbImage) -> Result<Vec<f32>, VisionError>;
    /// The embeddings of several crops, in order; one model run where the
    /// model allows it (the same values as one crop at a time).
    fn embed_batch(&mut self, aligned: &[RgbImage]) -> Result<Vec<Vec<f32>>, VisionError> {
        aligned.iter().map(|crop| self.embed(crop)).collect()
    }
}

/// Scales `v` to unit length in place; a zero vector stays zero.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_to_unit_length_and_keeps_direction() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut zero = vec![0.0; 3];
        l2_normalize(&mut zero);
        assert_eq!(zero, [0.0; 3]);
    }
}
