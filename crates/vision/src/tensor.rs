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
    let (image_w, image_h) = (image.width() as usize, image.height() as usize);
    let (cols, rows) = (image_w.min(width), image_h.min(height));
    let plane = width * height;
    let out = t.as_slice_mut().expect("a new array is contiguous");
    for (y, row) in image.as_raw().chunks_exact(image_w * 3).take(rows).enumerate() {
        let row = &row[..cols * 3];
        for (c, &source) in order.iter().enumerate() {
            let start = c * plane + y * width;
            for (o, px) in out[start..start + cols].iter_mut().zip(row.chunks_exact(3)) {
                *o = f32::from(px[source]);
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_land_in_their_channel_planes_and_the_rest_is_zero() {
        let mut img = RgbImage::new(3, 2);
        img.put_pixel(2, 1, image::Rgb([1, 2, 3]));
        img.put_pixel(0, 0, image::Rgb([4, 5, 6]));
        let t = nchw(&img, 4, 3, BGR);
        assert_eq!([t[[0, 0, 1, 2]], t[[0, 1, 1, 2]], t[[0, 2, 1, 2]]], [3.0, 2.0, 1.0]);
        assert_eq!([t[[0, 0, 0, 0]], t[[0, 2, 0, 0]]], [6.0, 4.0]);
        assert_eq!(t.iter().filter(|v| **v != 0.0).count(), 6);
        // Cut to a smaller tensor.
        let small = nchw(&img, 2, 1, RGB);
        assert_eq!(small.as_slice().unwrap(), &[4.0, 0.0, 5.0, 0.0, 6.0, 0.0]);
    }
}
