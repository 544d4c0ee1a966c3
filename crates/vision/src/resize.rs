//! Bilinear resize, bit-exact with OpenCV's `cv::resize(..., INTER_LINEAR)` on
//! 8-bit images: half-pixel centres, no antialiasing, 11-bit fixed-point weights
//! and OpenCV's rounding. YuNet's published accuracy and OpenCV's reference
//! pipeline assume exactly this downscale; a smoother filter moves landmarks.

use image::RgbImage;

const COEF_BITS: u32 = 11;
const COEF_SCALE: f32 = (1 << COEF_BITS) as f32;

/// One output coordinate: the first of two source samples and their weights.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tap {
    /// May be -1 on the vertical axis when upscaling; rows are clamped when read.
    index: i64,
    weights: [i32; 2],
}

/// OpenCV's `saturate_cast<short>(float)`: round half to even.
fn fixed(v: f32) -> i32 {
    (v * COEF_SCALE).round_ties_even() as i32
}

/// Source taps along one axis. `clamp_edges` is OpenCV's horizontal rule
/// (taps before the first or past the last sample collapse onto it); the
/// vertical axis instead clamps row indices when reading.
fn taps(dst_len: u32, src_len: u32, clamp_edges: bool) -> Vec<Tap> {
    let scale = 1.0 / (f64::from(dst_len) / f64::from(src_len));
    let last = i64::from(src_len) - 1;
    (0..dst_len)
        .map(|d| {
            let f = ((f64::from(d) + 0.5) * scale - 0.5) as f32;
            let s = f.floor();
            let (mut index, mut frac) = (s as i64, f - s);
            if clamp_edges && index < 0 {
                (index, frac) = (0, 0.0);
            }
            if clamp_edges && index >= last {
                (index, frac) = (last, 0.0);
            }
            Tap { index, weights: [fixed(1.0 - frac), fixed(frac)] }
        })
        .collect()
}

/// Resizes `src` to `width`×`height` the way `cv::resize` with `INTER_LINEAR` does.
pub fn resize_linear(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    if (src.width(), src.height()) == (width, height) {
        return src.clone();
    }
    let xs = taps(width, src.width(), true);
    let ys = taps(height, src.height(), false);
    // Horizontal pass of one source row, in fixed point (weights sum to about 2048).
    let horizontal = |y: i64, out: &mut Vec<i32>| {
        let y = y.clamp(0, sh as i64 - 1) as usize;
        let row = &src.as_raw()[y * sw * 3..(y + 1) * sw * 3];
        out.clear();
        for t in &xs {
            let (first, next) = (t.index as usize, (t.index as usize + 1).min(sw - 1));
            for c in 0..3 {
                out.push(i32::from(row[first * 3 + c]) * t.weights[0] + i32::from(row[next * 3 + c]) * t.weights[1]);
            }
        }
    };
    let (mut top, mut bottom) = (Vec::new(), Vec::new());
    let mut out = Vec::with_capacity(width as usize * height as usize * 3);
    for t in &ys {
        horizontal(t.index, &mut top);
        horizontal(t.index + 1, &mut bottom);
        let [b0, b1] = t.weights;
        // OpenCV's vertical step: the 22-bit product taken as two 16-bit high
        // multiplies plus rounding, exactly as its SIMD and scalar code do.
        out.extend(top.iter().zip(&bottom).map(|(&s0, &s1)| {
            let v = (((b0 * (s0 >> 4)) >> 16) + ((b1 * (s1 >> 4)) >> 16) + 2) >> 2;
            v.clamp(0, 255) as u8
        }));
    }
    RgbImage::from_raw(width, height, out).expect("buffer sized width * height * 3")
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn same_size_is_a_copy() {
        let img = RgbImage::from_fn(5, 4, |x, y| Rgb([x as u8, y as u8, 9]));
        assert_eq!(resize_linear(&img, 5, 4), img);
    }

    #[test]
    fn halving_averages_pairs_without_antialiasing() {
        // Half-pixel centres: output x samples source x = 2x + 0.5, the mean of two neighbours.
        let img = RgbImage::from_fn(8, 1, |x, _| Rgb([x as u8 * 20, 0, 0]));
        let out = resize_linear(&img, 4, 1);
        let reds: Vec<u8> = out.pixels().map(|p| p[0]).collect();
        assert_eq!(reds, [10, 50, 90, 130]);
    }

    #[test]
    fn downscale_by_three_takes_the_middle_sample_only() {
        // Scale 3: sample at 3x + 1 exactly, so neighbours do not bleed in (no antialiasing).
        let img = RgbImage::from_fn(9, 1, |x, _| Rgb([if x % 3 == 1 { 200 } else { 0 }, 0, 0]));
        let out = resize_linear(&img, 3, 1);
        assert!(out.pixels().all(|p| p[0] == 200), "{out:?}");
    }

    #[test]
    fn upscaling_clamps_at_the_edges() {
        let img = RgbImage::from_fn(2, 2, |x, y| Rgb([(x * 100 + y * 50) as u8, 0, 0]));
        let out = resize_linear(&img, 4, 4);
        // Corners repeat the source corners; inner samples interpolate.
        assert_eq!(out.get_pixel(0, 0)[0], 0);
        assert_eq!(out.get_pixel(3, 3)[0], 150);
        assert_eq!(out.get_pixel(1, 0)[0], 25);
    }
}
