//! Measures a detected face's quality (`FaceQuality`): size from the landmarks,
//! sharpness from the aligned crop, pose from landmark geometry, and how much
//! of the face (box and landmarks) lies inside the image.

use facerec_core::{BBox, FaceQuality};
use image::RgbImage;

use crate::Detection;

/// All four measurements for `face`, found in `image` and aligned to `crop`.
pub fn measure_quality(image: &RgbImage, face: &Detection, crop: &RgbImage) -> FaceQuality {
    FaceQuality {
        inter_eye_distance: inter_eye_distance(&face.landmarks),
        sharpness: laplacian_variance(crop),
        pose_offset: pose_offset(&face.landmarks),
        visible_fraction: visible_fraction(&face.bbox, image.width(), image.height()).min(landmarks_inside(
            &face.landmarks,
            image.width(),
            image.height(),
        )),
    }
}

/// Distance between the eye centres (the first two landmarks), in pixels.
pub fn inter_eye_distance(landmarks: &[[f32; 2]; 5]) -> f32 {
    let [left, right, ..] = landmarks;
    (left[0] - right[0]).hypot(left[1] - right[1])
}

/// Variance of the 4-neighbour Laplacian of the grayscale image (OpenCV's
/// `Laplacian(ksize=1)`), over interior pixels: the classic focus measure.
pub fn laplacian_variance(image: &RgbImage) -> f32 {
    let (w, h) = (image.width() as usize, image.height() as usize);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let gray: Vec<f64> =
        image.pixels().map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])).collect();
    let (mut sum, mut sum_sq, mut n) = (0.0, 0.0, 0.0);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let i = y * w + x;
            let lap = gray[i - 1] + gray[i + 1] + gray[i - w] + gray[i + w] - 4.0 * gray[i];
            sum += lap;
            sum_sq += lap * lap;
            n += 1.0;
        }
    }
    let mean = sum / n;
    (sum_sq / n - mean * mean) as f32
}

/// The nose tip's distance from the face's midline (eye midpoint to mouth
/// midpoint), in inter-eye distances. In-plane rotation does not change it.
/// Capped at 10 (degenerate landmarks), so it stays a finite JSON number.
pub fn pose_offset(landmarks: &[[f32; 2]; 5]) -> f32 {
    let [left_eye, right_eye, nose, left_mouth, right_mouth] = landmarks.map(|p| [f64::from(p[0]), f64::from(p[1])]);
    let mid = |a: [f64; 2], b: [f64; 2]| [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0];
    let (eyes, mouth) = (mid(left_eye, right_eye), mid(left_mouth, right_mouth));
    let inter_eye = (right_eye[0] - left_eye[0]).hypot(right_eye[1] - left_eye[1]);
    // The midline runs from the eyes to the mouth; if they coincide (a broken
    // detection), fall back to the perpendicular of the eye line.
    let mut axis = [mouth[0] - eyes[0], mouth[1] - eyes[1]];
    if axis[0].hypot(axis[1]) < 1e-6 {
        axis = [-(right_eye[1] - left_eye[1]), right_eye[0] - left_eye[0]];
    }
    let len = axis[0].hypot(axis[1]);
    const CAP: f64 = 10.0;
    if inter_eye < 1e-6 || len < 1e-6 {
        return CAP as f32;
    }
    let cross = axis[0] * (nose[1] - eyes[1]) - axis[1] * (nose[0] - eyes[0]);
    ((cross / len).abs() / inter_eye).min(CAP) as f32
}

/// Share of `bbox` inside a `width`×`height` image.
pub fn visible_fraction(bbox: &BBox, width: u32, height: u32) -> f32 {
    let area = bbox.area();
    if area <= 0.0 {
        return 0.0;
    }
    // In f64, a box wholly inside gives exactly 1.
    let (x, y, w, h) = (f64::from(bbox.x), f64::from(bbox.y), f64::from(bbox.width), f64::from(bbox.height));
    let ix = ((x + w).min(f64::from(width)) - x.max(0.0)).max(0.0);
    let iy = ((y + h).min(f64::from(height)) - y.max(0.0)).max(0.0);
    ((ix * iy) / (w * h)).clamp(0.0, 1.0) as f32
}

/// Share of the five landmarks inside a `width`×`height` image. At the
/// photo's own resolution YuNet boxes only the visible part of a face cut by
/// the photo's edge, but still places the missing eye beyond that edge.
pub fn landmarks_inside(landmarks: &[[f32; 2]; 5], width: u32, height: u32) -> f32 {
    let (w, h) = (width as f32, height as f32);
    let inside = landmarks.iter().filter(|[x, y]| (0.0..w).contains(x) && (0.0..h).contains(y)).count();
    inside as f32 / landmarks.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    const FRONTAL: [[f32; 2]; 5] = [[40.0, 50.0], [80.0, 50.0], [60.0, 70.0], [45.0, 90.0], [75.0, 90.0]];

    #[test]
    fn frontal_face_has_no_pose_offset_and_rotation_does_not_add_one() {
        assert!(pose_offset(&FRONTAL) < 1e-6);
        let (c, s) = (0.6f32.cos(), 0.6f32.sin());
        let rotated = FRONTAL.map(|[x, y]| [c * x - s * y + 200.0, s * x + c * y]);
        assert!(pose_offset(&rotated) < 1e-4, "{}", pose_offset(&rotated));
    }

    #[test]
    fn nose_off_the_midline_measures_in_inter_eye_distances() {
        let mut turned = FRONTAL;
        turned[2][0] += 16.0; // 16 px of a 40 px inter-eye distance
        assert!((pose_offset(&turned) - 0.4).abs() < 1e-5, "{}", pose_offset(&turned));
    }

    #[test]
    fn blur_lowers_the_laplacian_variance() {
        let sharp =
            RgbImage::from_fn(32, 32, |x, y| if (x / 2 + y / 2) % 2 == 0 { Rgb([255; 3]) } else { Rgb([0; 3]) });
        let blurred = image::imageops::blur(&sharp, 2.0);
        let flat = RgbImage::from_pixel(32, 32, Rgb([90; 3]));
        assert!(laplacian_variance(&sharp) > 10.0 * laplacian_variance(&blurred));
        assert_eq!(laplacian_variance(&flat), 0.0);
    }

    #[test]
    fn visible_fraction_counts_the_box_inside_the_image() {
        let inside = BBox { x: 10.0, y: 10.0, width: 20.0, height: 20.0 };
        assert_eq!(visible_fraction(&inside, 100, 100), 1.0);
        let half_out = BBox { x: -10.0, ..inside };
        assert_eq!(visible_fraction(&half_out, 100, 100), 0.5);
        let below = BBox { y: 90.0, ..inside };
        assert_eq!(visible_fraction(&below, 100, 100), 0.5);
    }

    #[test]
    fn a_landmark_beyond_the_edge_counts_as_a_cut_face() {
        assert_eq!(landmarks_inside(&FRONTAL, 100, 100), 1.0);
        // The right eye (x 80) is beyond a 78-px wide photo's edge.
        assert_eq!(landmarks_inside(&FRONTAL, 78, 100), 0.8);
        assert_eq!(landmarks_inside(&FRONTAL, 100, 60), 0.4);
    }
}
