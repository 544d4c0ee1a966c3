//! Images as the NCHW float tensors the models take: raw 0..255 values, no
//! mean or scale, channels in the order the model was trained with.

use image::RgbImage;
use ndarray::Array4;

/// Channel orders, as indices into an RGB pixel.
pub const RGB: [usize; 3] = [0, 1, 2];
pub const BGR: [usize; 3] = [2, 1, 0];

/// A `1×3×height×width` tensor holding `image` top-left, zero elsewhere (the
/// padding YuNet expects); pixels beyond the tensor are cut.
pub fn nchw(image: &RgbImage, width: usize, height: usize, order: [usize; 3]) -> Array4<f32> {
    let mut t = Array4::<f32>::zeros((1, 3, height, width));
    for (x, y, p) in image.enumerate_pixels() {
        let (x, y) = (x as usize, y as usize);
        if x < width && y < height {
            for (c, &source) in order.iter().enumerate() {
                t[[0, c, y, x]] = f32::from(p[source]);
            }
        }
    }
    t
}
