//! Five-point face alignment: the similarity transform (rotation, uniform
//! scale, translation) that best maps detected landmarks onto the template the
//! embedder was trained with, and a bilinear warp like OpenCV's `warpAffine`.

use image::{Rgb, RgbImage};

/// Landmark positions in the 112×112 crop that SFace (and ArcFace) expect,
/// in YuNet's landmark order. Same values as OpenCV's `FaceRecognizerSF::alignCrop`.
pub const SFACE_TEMPLATE: [[f32; 2]; 5] =
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]];

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

    /// The inverse map, `src = M⁻¹ · dst`; `None` when the transform is degenerate.
    pub fn inverse(&self) -> Option<Similarity> {
        let d = self.a * self.a + self.b * self.b;
        if d < 1e-12 {
            return None;
        }
        let (a, b) = (self.a / d, -self.b / d);
        Some(Similarity { a, b, tx: -(a * self.tx - b * self.ty), ty: -(b * self.tx + a * self.ty) })
    }
}

/// Least-squares similarity transform from `src` to `dst` points (Umeyama without
/// reflection, in closed form for 2-D). `None` when all source points coincide.
pub fn estimate_similarity(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Option<Similarity> {
    assert_eq!(src.len(), dst.len(), "point sets differ in length");
    let n = src.len() as f64;
    let mean = |p: &[[f32; 2]]| {
        let (sx, sy) = p.iter().fold((0.0, 0.0), |(x, y), q| (x + q[0] as f64, y + q[1] as f64));
        (sx / n, sy / n)
    };
    let ((mx, my), (nx, ny)) = (mean(src), mean(dst));
    let (mut num_a, mut num_b, mut den) = (0.0, 0.0, 0.0);
    for (p, q) in src.iter().zip(dst) {
        let (x, y) = (p[0] as f64 - mx, p[1] as f64 - my);
        let (u, v) = (q[0] as f64 - nx, q[1] as f64 - ny);
        num_a += x * u + y * v;
        num_b += x * v - y * u;
        den += x * x + y * y;
    }
    if den < 1e-12 {
        return None;
    }
    let (a, b) = (num_a / den, num_b / den);
    Some(Similarity { a, b, tx: nx - (a * mx - b * my), ty: ny - (b * mx + a * my) })
}

/// Fills a `width`×`height` image whose pixel (u, v) is the source sampled at
/// `to_dst⁻¹(u, v)`, bilinearly; samples outside the source are black.
pub fn warp_affine(src: &RgbImage, to_dst: &Similarity, width: u32, height: u32) -> RgbImage {
    let Some(inv) = to_dst.inverse() else {
        return RgbImage::new(width, height);
    };
    let (sw, sh) = (src.width() as i64, src.height() as i64);
    let pixel = |x: i64, y: i64| -> [f64; 3] {
        if x < 0 || y < 0 || x >= sw || y >= sh {
            return [0.0; 3];
        }
        let p = src.get_pixel(x as u32, y as u32).0;
        [p[0] as f64, p[1] as f64, p[2] as f64]
    };
    RgbImage::from_fn(width, height, |u, v| {
        let [x, y] = inv.apply([u as f64, v as f64]);
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let (p00, p10, p01, p11) = (pixel(x0, y0), pixel(x0 + 1, y0), pixel(x0, y0 + 1), pixel(x0 + 1, y0 + 1));
        Rgb(std::array::from_fn(|c| {
            let top = p00[c] * (1.0 - fx) + p10[c] * fx;
            let bottom = p01[c] * (1.0 - fx) + p11[c] * fx;
            (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
        }))
    })
}

/// Crops the face at `landmarks` out of `image`, aligned to `template`, `size`×`size` pixels.
pub fn align_face(image: &RgbImage, landmarks: &[[f32; 2]; 5], template: &[[f32; 2]; 5], size: u32) -> RgbImage {
    match estimate_similarity(landmarks, template) {
        Some(m) => warp_affine(image, &m, size, size),
        None => RgbImage::new(size, size),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [f64; 2], b: [f32; 2]) -> bool {
        (a[0] - b[0] as f64).abs() < 1e-3 && (a[1] - b[1] as f64).abs() < 1e-3
    }

    #[test]
    fn recovers_a_known_similarity_exactly() {
        let truth = Similarity { a: 0.8, b: -0.3, tx: 12.0, ty: -7.5 };
        let inv = truth.inverse().unwrap();
        // Points that `truth` maps onto the template.
        let src: Vec<[f32; 2]> =
            SFACE_TEMPLATE.iter().map(|p| inv.apply([p[0] as f64, p[1] as f64]).map(|v| v as f32)).collect();
        let m = estimate_similarity(&src, &SFACE_TEMPLATE).unwrap();
        assert!((m.a - truth.a).abs() < 1e-5 && (m.b - truth.b).abs() < 1e-5, "{m:?}");
        assert!((m.tx - truth.tx).abs() < 1e-3 && (m.ty - truth.ty).abs() < 1e-3, "{m:?}");
        for (p, q) in src.iter().zip(SFACE_TEMPLATE) {
            assert!(close(m.apply([p[0] as f64, p[1] as f64]), q));
        }
    }

    #[test]
    fn degenerate_landmarks_give_no_transform() {
        assert_eq!(estimate_similarity(&[[3.0, 3.0]; 5], &SFACE_TEMPLATE), None);
    }

    #[test]
    fn identity_warp_copies_and_shift_pads_with_black() {
        let src = RgbImage::from_fn(8, 8, |x, y| Rgb([x as u8 * 10, y as u8 * 10, 7]));
        let id = Similarity { a: 1.0, b: 0.0, tx: 0.0, ty: 0.0 };
        assert_eq!(warp_affine(&src, &id, 8, 8), src);
        let shift = Similarity { a: 1.0, b: 0.0, tx: 2.0, ty: 0.0 };
        let out = warp_affine(&src, &shift, 8, 8);
        assert_eq!(out.get_pixel(0, 3).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(5, 3), src.get_pixel(3, 3));
    }

    #[test]
    fn half_pixel_shift_interpolates_bilinearly() {
        let src = RgbImage::from_fn(4, 1, |x, _| Rgb([x as u8 * 60, 0, 0]));
        let shift = Similarity { a: 1.0, b: 0.0, tx: -0.5, ty: 0.0 };
        let out = warp_affine(&src, &shift, 4, 1);
        assert_eq!(out.get_pixel(0, 0).0[0], 30);
        assert_eq!(out.get_pixel(2, 0).0[0], 150);
        // Half of the last sample lies outside the image, which counts as black.
        assert_eq!(out.get_pixel(3, 0).0[0], 90);
    }

    #[test]
    fn aligned_crop_puts_landmarks_on_the_template() {
        // A bright dot at each landmark of a rotated, scaled face.
        let truth = Similarity { a: 1.9, b: 0.6, tx: 40.0, ty: 25.0 };
        let mut img = RgbImage::new(400, 400);
        let landmarks: [[f32; 2]; 5] =
            SFACE_TEMPLATE.map(|p| truth.apply([p[0] as f64, p[1] as f64]).map(|v| v as f32));
        for p in landmarks {
            for dy in -2i32..=2 {
                for dx in -2i32..=2 {
                    img.put_pixel((p[0].round() as i32 + dx) as u32, (p[1].round() as i32 + dy) as u32, Rgb([255; 3]));
                }
            }
        }
        let crop = align_face(&img, &landmarks, &SFACE_TEMPLATE, 112);
        for p in SFACE_TEMPLATE {
            let px = crop.get_pixel(p[0].round() as u32, p[1].round() as u32).0;
            assert!(px[0] > 200, "no landmark at {p:?}: {px:?}");
        }
        assert_eq!(crop.get_pixel(2, 2).0, [0, 0, 0]);
    }
}
