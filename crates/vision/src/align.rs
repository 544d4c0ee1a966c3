//! Five-point face alignment, bit-exact with OpenCV's `FaceRecognizerSF::alignCrop`:
//! the least-squares similarity transform (rotation, uniform scale, translation)
//! from the detected landmarks onto the template the embedder was trained with,
//! computed with OpenCV's float/double steps, then `warpAffine`'s fixed-point
//! bilinear warp. Being exact here is what keeps our embeddings at cosine ≈ 1
//! to the reference.

use image::{Rgb, RgbImage};

/// Where the five landmarks must land in the embedder's square input crop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceTemplate {
    /// Side of the square crop in pixels.
    pub size: u32,
    /// Eyes (image-left, image-right), nose tip, mouth corners, in crop pixels.
    pub points: [[f32; 2]; 5],
    /// Mean of `points`, as the reference implementation rounds it.
    pub mean: [f32; 2],
}

/// The 112×112 ArcFace template SFace expects, with OpenCV's constants.
pub const SFACE_TEMPLATE: FaceTemplate = FaceTemplate {
    size: 112,
    points: [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    mean: [56.0262, 71.9008],
};

/// `dst = [a -b; b a] · src + t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f64,
    pub b: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Similarity {
    pub fn apply(&self, [x, y]: [f64; 2]) -> [f64; 2] {
        [self.a * x - self.b * y + self.tx, self.b * x + self.a * y + self.ty]
    }

    /// The inverse map as OpenCV's `invertAffineTransform` computes it; `None` when degenerate.
    pub fn inverse(&self) -> Option<Similarity> {
        let det = self.a * self.a + self.b * self.b;
        if det < 1e-12 {
            return None;
        }
        let d = 1.0 / det;
        let (a, b) = (self.a * d, -self.b * d);
        Some(Similarity { a, b, tx: -a * self.tx + b * self.ty, ty: -b * self.tx - a * self.ty })
    }
}

/// Least-squares similarity from `src` landmarks onto `template` (Umeyama without
/// reflection; closed form for 2-D), replicating OpenCV's `getSimilarityTransformMatrix`:
/// means and centred points in f32, products in f32 summed in f64.
/// `None` when all landmarks coincide.
pub fn estimate_similarity(src: &[[f32; 2]; 5], template: &FaceTemplate) -> Option<Similarity> {
    let mean = |axis: usize| src.iter().fold(0.0f32, |acc, p| acc + p[axis]) / 5.0;
    let (mx, my) = (mean(0), mean(1));
    let centred = src.map(|p| [p[0] - mx, p[1] - my]);
    let target = template.points.map(|q| [q[0] - template.mean[0], q[1] - template.mean[1]]);
    let dot = |f: &dyn Fn(usize) -> f32| (0..5).map(|i| f64::from(f(i))).sum::<f64>() / 5.0;
    let a00 = dot(&|i| target[i][0] * centred[i][0]);
    let a01 = dot(&|i| target[i][0] * centred[i][1]);
    let a10 = dot(&|i| target[i][1] * centred[i][0]);
    let a11 = dot(&|i| target[i][1] * centred[i][1]);
    let variance = dot(&|i| centred[i][0] * centred[i][0]) + dot(&|i| centred[i][1] * centred[i][1]);
    // The rotation U·Vᵀ of the 2×2 SVD and the sum of its singular values, in closed form.
    let (c, s) = (a00 + a11, a10 - a01);
    let norm = c.hypot(s);
    if variance < 1e-12 || norm < 1e-12 {
        return None;
    }
    let (cos, sin) = (c / norm, s / norm);
    let scale = 1.0 / variance * norm;
    let (mx, my) = (f64::from(mx), f64::from(my));
    let (rx, ry) = (cos * mx - sin * my, sin * mx + cos * my);
    Some(Similarity {
        a: cos * scale,
        b: sin * scale,
        tx: f64::from(template.mean[0]) - scale * rx,
        ty: f64::from(template.mean[1]) - scale * ry,
    })
}

/// Fixed-point layout of OpenCV's `warpAffine` with `INTER_LINEAR`.
const INTER_BITS: u32 = 5;
const INTER_TAB: i64 = 1 << INTER_BITS;
const AB_BITS: u32 = 10;
const AB_SCALE: f64 = (1 << AB_BITS) as f64;
const REMAP_BITS: u32 = 15;

/// OpenCV's `saturate_cast<int>(double)`: round half to even.
fn round_i64(v: f64) -> i64 {
    v.round_ties_even() as i64
}

/// Fills a `size`×`size` image whose pixel (u, v) is `src` sampled at
/// `to_dst⁻¹(u, v)`, like `cv::warpAffine(INTER_LINEAR, BORDER_CONSTANT 0)`:
/// coordinates in 1/32 pixel, 15-bit bilinear weights; samples outside are black.
pub fn warp_affine(src: &RgbImage, to_dst: &Similarity, size: u32) -> RgbImage {
    let Some(m) = to_dst.inverse() else {
        return RgbImage::new(size, size);
    };
    let (sw, sh) = (i64::from(src.width()), i64::from(src.height()));
    let pixel = |x: i64, y: i64| -> [i64; 3] {
        if x < 0 || y < 0 || x >= sw || y >= sh {
            return [0; 3];
        }
        src.get_pixel(x as u32, y as u32).0.map(i64::from)
    };
    // Row-independent parts of x' = a·u - b·v + tx and y' = b·u + a·v + ty.
    let du: Vec<(i64, i64)> = (0..size)
        .map(|u| (round_i64(m.a * f64::from(u) * AB_SCALE), round_i64(m.b * f64::from(u) * AB_SCALE)))
        .collect();
    let round_delta = (AB_SCALE as i64) / INTER_TAB / 2;
    let mut out = RgbImage::new(size, size);
    for v in 0..size {
        let x0 = round_i64((-m.b * f64::from(v) + m.tx) * AB_SCALE) + round_delta;
        let y0 = round_i64((m.a * f64::from(v) + m.ty) * AB_SCALE) + round_delta;
        for (u, &(dx, dy)) in du.iter().enumerate() {
            let x = (x0 + dx) >> (AB_BITS - INTER_BITS);
            let y = (y0 + dy) >> (AB_BITS - INTER_BITS);
            let (sx, sy, fx, fy) = (x >> INTER_BITS, y >> INTER_BITS, x & (INTER_TAB - 1), y & (INTER_TAB - 1));
            let weights = [(INTER_TAB - fx) * (INTER_TAB - fy), fx * (INTER_TAB - fy), (INTER_TAB - fx) * fy, fx * fy]
                .map(|w| w << (REMAP_BITS - 2 * INTER_BITS));
            let samples = [pixel(sx, sy), pixel(sx + 1, sy), pixel(sx, sy + 1), pixel(sx + 1, sy + 1)];
            let value: [u8; 3] = std::array::from_fn(|c| {
                let acc: i64 = samples.iter().zip(weights).map(|(p, w)| p[c] * w).sum();
                ((acc + (1 << (REMAP_BITS - 1))) >> REMAP_BITS).clamp(0, 255) as u8
            });
            out.put_pixel(u as u32, v, Rgb(value));
        }
    }
    out
}

/// Crops the face at `landmarks` out of `image`, aligned to `template`.
pub fn align_face(image: &RgbImage, landmarks: &[[f32; 2]; 5], template: &FaceTemplate) -> RgbImage {
    match estimate_similarity(landmarks, template) {
        Some(m) => warp_affine(image, &m, template.size),
        None => RgbImage::new(template.size, template.size),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [f64; 2], b: [f32; 2]) -> bool {
        (a[0] - b[0] as f64).abs() < 1e-3 && (a[1] - b[1] as f64).abs() < 1e-3
    }

    const IDENTITY: Similarity = Similarity { a: 1.0, b: 0.0, tx: 0.0, ty: 0.0 };

    #[test]
    fn recovers_a_known_similarity() {
        let truth = Similarity { a: 0.8, b: -0.3, tx: 12.0, ty: -7.5 };
        let inv = truth.inverse().unwrap();
        // Points that `truth` maps onto the template.
        let src = SFACE_TEMPLATE.points.map(|p| inv.apply([p[0] as f64, p[1] as f64]).map(|v| v as f32));
        let m = estimate_similarity(&src, &SFACE_TEMPLATE).unwrap();
        assert!((m.a - truth.a).abs() < 1e-5 && (m.b - truth.b).abs() < 1e-5, "{m:?}");
        // The template's rounded mean (OpenCV's constant) shifts t by at most ~1e-4.
        assert!((m.tx - truth.tx).abs() < 1e-3 && (m.ty - truth.ty).abs() < 1e-3, "{m:?}");
        for (p, q) in src.iter().zip(SFACE_TEMPLATE.points) {
            assert!(close(m.apply([p[0] as f64, p[1] as f64]), q));
        }
    }

    #[test]
    fn inverse_undoes_the_map() {
        let m = Similarity { a: 1.3, b: 0.4, tx: -20.0, ty: 7.0 };
        let p = m.inverse().unwrap().apply(m.apply([3.0, -4.0]));
        assert!((p[0] - 3.0).abs() < 1e-9 && (p[1] + 4.0).abs() < 1e-9, "{p:?}");
        assert_eq!(Similarity { a: 0.0, b: 0.0, tx: 1.0, ty: 1.0 }.inverse(), None);
    }

    #[test]
    fn degenerate_landmarks_give_no_transform() {
        assert_eq!(estimate_similarity(&[[3.0, 3.0]; 5], &SFACE_TEMPLATE), None);
    }

    #[test]
    fn identity_warp_copies_and_shift_pads_with_black() {
        let src = RgbImage::from_fn(8, 8, |x, y| Rgb([x as u8 * 10, y as u8 * 10, 7]));
        assert_eq!(warp_affine(&src, &IDENTITY, 8), src);
        let shift = Similarity { tx: 2.0, ..IDENTITY };
        let out = warp_affine(&src, &shift, 8);
        assert_eq!(out.get_pixel(0, 3).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(5, 3), src.get_pixel(3, 3));
    }

    #[test]
    fn half_pixel_shift_interpolates_bilinearly() {
        let src = RgbImage::from_fn(4, 4, |x, _| Rgb([x as u8 * 60, 0, 0]));
        let out = warp_affine(&src, &Similarity { tx: -0.5, ..IDENTITY }, 4);
        assert_eq!(out.get_pixel(0, 0).0[0], 30);
        assert_eq!(out.get_pixel(2, 0).0[0], 150);
        // Half of the last sample lies outside the image, which counts as black.
        assert_eq!(out.get_pixel(3, 0).0[0], 90);
    }

    #[test]
    fn sub_pixel_positions_are_quantised_to_a_32nd() {
        // A shift of 1/64 px rounds to 1/32 (OpenCV's INTER_BITS): 255 · 1/32 ≈ 7.97 → 8.
        let src = RgbImage::from_fn(4, 4, |x, _| Rgb([if x == 1 { 255 } else { 0 }, 0, 0]));
        let out = warp_affine(&src, &Similarity { tx: -1.0 / 64.0, ..IDENTITY }, 4);
        assert_eq!(out.get_pixel(0, 1).0[0], 8);
        assert_eq!(out.get_pixel(1, 1).0[0], 247);
    }

    #[test]
    fn aligned_crop_puts_landmarks_on_the_template() {
        // A bright dot at each landmark of a rotated, scaled face.
        let truth = Similarity { a: 1.9, b: 0.6, tx: 40.0, ty: 25.0 };
        let mut img = RgbImage::new(400, 400);
        let landmarks = SFACE_TEMPLATE.points.map(|p| truth.apply([p[0] as f64, p[1] as f64]).map(|v| v as f32));
        for p in landmarks {
            for dy in -2i32..=2 {
                for dx in -2i32..=2 {
                    img.put_pixel((p[0].round() as i32 + dx) as u32, (p[1].round() as i32 + dy) as u32, Rgb([255; 3]));
                }
            }
        }
        let crop = align_face(&img, &landmarks, &SFACE_TEMPLATE);
        assert_eq!(crop.dimensions(), (112, 112));
        for p in SFACE_TEMPLATE.points {
            let px = crop.get_pixel(p[0].round() as u32, p[1].round() as u32).0;
            assert!(px[0] > 200, "no landmark at {p:?}: {px:?}");
        }
        assert_eq!(crop.get_pixel(2, 2).0, [0, 0, 0]);
    }
}
