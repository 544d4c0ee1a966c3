//! YuNet (OpenCV model zoo, 2023mar): an anchor-free detector with 5 landmarks.
//!
//! Pre- and post-processing follow OpenCV's `FaceDetectorYN` so that our boxes
//! and landmarks match the reference: BGR float input in 0..255, right/bottom
//! zero padding to a multiple of 32, per-stride decoding, greedy NMS on
//! integer boxes. Photos larger than `max_side` are downscaled with OpenCV's
//! exact bilinear resize and the results mapped back to full-size pixels.

use std::path::Path;

use facerec_core::BBox;
use image::RgbImage;
use ndarray::Array4;
use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;

use crate::{Detection, Detector, VisionError, resize_linear, tensor};

const MODEL: &str = "yunet_2023mar";
const STRIDES: [usize; 3] = [8, 16, 32];

#[derive(Debug, Clone, Copy)]
pub struct YuNetConfig {
    /// Longest side given to the network; larger photos are downscaled first.
    pub max_side: u32,
    /// Minimum face score, sqrt(cls * obj), in [0, 1].
    pub score_threshold: f32,
    /// Boxes overlapping a better one by more than this IoU are dropped.
    pub nms_threshold: f32,
    pub intra_threads: usize,
}

impl Default for YuNetConfig {
    fn default() -> Self {
        Self { max_side: 640, score_threshold: 0.6, nms_threshold: 0.3, intra_threads: 1 }
    }
}

pub struct YuNet {
    session: Session,
    input_name: String,
    /// Set when the model has a fixed input size; otherwise inputs are padded to a multiple of 32.
    fixed_input: Option<(usize, usize)>,
    config: YuNetConfig,
}

impl YuNet {
    pub fn load(env: &Environment, path: &Path, config: YuNetConfig) -> Result<Self, VisionError> {
        let session = crate::sface::load_session(env, path, config.intra_threads)?;
        let input = &session.inputs()[0];
        let input_name = input.name().to_owned();
        let fixed_input = input.dtype().tensor_shape().and_then(|s| match (s.get(2), s.get(3)) {
            (Some(&h), Some(&w)) if h > 0 && w > 0 => Some((w as usize, h as usize)),
            _ => None,
        });
        Ok(Self { session, input_name, fixed_input, config })
    }
}

impl Detector for YuNet {
    fn model_id(&self) -> &str {
        MODEL
    }

    fn detect(&mut self, image: &RgbImage) -> Result<Vec<Detection>, VisionError> {
        let (w, h) = image.dimensions();
        let (sw, sh) = scaled_size(w, h, self.config.max_side);
        let small;
        let net_image = if (sw, sh) == (w, h) {
            image
        } else {
            small = resize_linear(image, sw, sh);
            &small
        };
        let (pad_w, pad_h) = self.fixed_input.unwrap_or((pad32(sw), pad32(sh)));
        let input = to_bgr_tensor(net_image, pad_w, pad_h);
        let tensor = TensorRef::from_array_view(&input).map_err(inference)?;
        let outputs = self.session.run(ort::inputs![self.input_name.as_str() => tensor]).map_err(inference)?;
        let mut heads = Vec::with_capacity(12);
        for name in ["cls", "obj", "bbox", "kps"] {
            for stride in STRIDES {
                let key = format!("{name}_{stride}");
                let value = outputs.get(&key).ok_or_else(|| VisionError::UnexpectedOutput {
                    model: MODEL,
                    detail: format!("no output named {key}"),
                })?;
                let (_, data) = value.try_extract_tensor::<f32>().map_err(inference)?;
                heads.push(data.to_vec());
            }
        }
        let heads = Heads::from_vec(heads);
        let mut faces = decode(&heads, pad_w, pad_h, self.config.score_threshold)?;
        faces = nms(faces, self.config.nms_threshold);
        if (sw, sh) != (w, h) {
            let (fx, fy) = (f64::from(w) / f64::from(sw), f64::from(h) / f64::from(sh));
            faces.iter_mut().for_each(|f| rescale(f, fx, fy));
        }
        Ok(faces)
    }
}

fn inference(source: ort::Error) -> VisionError {
    VisionError::Inference { model: MODEL, source }
}

/// Size after fitting the longest side into `max_side` (never upscales).
pub fn scaled_size(w: u32, h: u32, max_side: u32) -> (u32, u32) {
    let longest = w.max(h);
    if longest <= max_side {
        return (w, h);
    }
    let scale = max_side as f64 / longest as f64;
    let fit = |v: u32| ((v as f64 * scale).round() as u32).clamp(1, max_side);
    (fit(w), fit(h))
}

fn pad32(v: u32) -> usize {
    (v as usize).div_ceil(32) * 32
}

/// NCHW float tensor, channels in B, G, R order, zero padded right and bottom.
pub fn to_bgr_tensor(image: &RgbImage, pad_w: usize, pad_h: usize) -> Array4<f32> {
    tensor::nchw(image, pad_w, pad_h, tensor::BGR)
}

/// The twelve output heads, per stride 8, 16, 32: class and objectness scores
/// (one per cell), box (4 per cell) and landmarks (10 per cell), row-major cells.
pub struct Heads {
    pub cls: [Vec<f32>; 3],
    pub obj: [Vec<f32>; 3],
    pub bbox: [Vec<f32>; 3],
    pub kps: [Vec<f32>; 3],
}

impl Heads {
    fn from_vec(mut v: Vec<Vec<f32>>) -> Self {
        let mut take3 = || [v.remove(0), v.remove(0), v.remove(0)];
        let (cls, obj, bbox, kps) = (take3(), take3(), take3(), take3());
        Self { cls, obj, bbox, kps }
    }
}

/// Turns raw heads into candidate faces in network-input pixels (before NMS).
pub fn decode(heads: &Heads, pad_w: usize, pad_h: usize, score_threshold: f32) -> Result<Vec<Detection>, VisionError> {
    let mut faces = Vec::new();
    for (i, stride) in STRIDES.into_iter().enumerate() {
        let (cols, rows) = (pad_w / stride, pad_h / stride);
        let cells = cols * rows;
        let sizes = [heads.cls[i].len(), heads.obj[i].len(), heads.bbox[i].len(), heads.kps[i].len()];
        if sizes != [cells, cells, cells * 4, cells * 10] {
            return Err(VisionError::UnexpectedOutput {
                model: MODEL,
                detail: format!("stride {stride}: head sizes {sizes:?} for a {cols}x{rows} grid"),
            });
        }
        let s = stride as f32;
        for idx in 0..cells {
            let cls = heads.cls[i][idx].clamp(0.0, 1.0);
            let obj = heads.obj[i][idx].clamp(0.0, 1.0);
            let score = (cls * obj).sqrt();
            // A NaN score (a broken model) never counts as a face.
            if score.is_nan() || score < score_threshold {
                continue;
            }
            let (c, r) = ((idx % cols) as f32, (idx / cols) as f32);
            let b = &heads.bbox[i][idx * 4..idx * 4 + 4];
            let (cx, cy) = ((c + b[0]) * s, (r + b[1]) * s);
            let (w, h) = (b[2].exp() * s, b[3].exp() * s);
            let k = &heads.kps[i][idx * 10..idx * 10 + 10];
            // A broken model's non-finite geometry is never a face.
            if !(b.iter().chain(k).all(|v| v.is_finite()) && w.is_finite() && h.is_finite()) {
                continue;
            }
            let landmarks = std::array::from_fn(|n| [(k[2 * n] + c) * s, (k[2 * n + 1] + r) * s]);
            faces.push(Detection {
                bbox: BBox { x: cx - w / 2.0, y: cy - h / 2.0, width: w, height: h },
                score,
                landmarks,
            });
        }
    }
    Ok(faces)
}

/// IoU of two boxes truncated to integers, as OpenCV's `NMSBoxes` sees YuNet's boxes.
fn integer_iou(a: &BBox, b: &BBox) -> f64 {
    let int = |v: f32| v as i64;
    let (ax, ay, aw, ah) = (int(a.x), int(a.y), int(a.width), int(a.height));
    let (bx, by, bw, bh) = (int(b.x), int(b.y), int(b.width), int(b.height));
    let iw = (ax + aw).min(bx + bw) - ax.max(bx);
    let ih = (ay + ah).min(by + bh) - ay.max(by);
    let (area_a, area_b) = (aw * ah, bw * bh);
    if area_a + area_b <= 0 {
        return 1.0;
    }
    let inter = if iw > 0 && ih > 0 { (iw * ih) as f64 } else { 0.0 };
    inter / ((area_a + area_b) as f64 - inter)
}

/// Greedy non-maximum suppression: best score first (stable), drop boxes whose
/// integer IoU with a kept one exceeds `threshold`, as OpenCV's `NMSBoxes` does.
pub fn nms(mut faces: Vec<Detection>, threshold: f32) -> Vec<Detection> {
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::with_capacity(faces.len());
    for f in faces {
        if kept.iter().all(|k| integer_iou(&k.bbox, &f.bbox) <= f64::from(threshold)) {
            kept.push(f);
        }
    }
    kept
}

/// Maps a detection from the downscaled network input back to full-size pixels.
fn rescale(f: &mut Detection, fx: f64, fy: f64) {
    let sx = |v: f32| (f64::from(v) * fx) as f32;
    let sy = |v: f32| (f64::from(v) * fy) as f32;
    f.bbox = BBox { x: sx(f.bbox.x), y: sy(f.bbox.y), width: sx(f.bbox.width), height: sy(f.bbox.height) };
    for p in &mut f.landmarks {
        *p = [sx(p[0]), sy(p[1])];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Heads for a 64x32 input with every cell silent except the given ones.
    fn silent_heads(pad_w: usize, pad_h: usize) -> Heads {
        let grid = |s: usize| (pad_w / s) * (pad_h / s);
        Heads {
            cls: STRIDES.map(|s| vec![0.0; grid(s)]),
            obj: STRIDES.map(|s| vec![0.0; grid(s)]),
            bbox: STRIDES.map(|s| vec![0.0; grid(s) * 4]),
            kps: STRIDES.map(|s| vec![0.0; grid(s) * 10]),
        }
    }

    #[test]
    fn decodes_a_cell_relative_to_its_anchor_and_stride() {
        let mut h = silent_heads(64, 32);
        // Stride 16 grid is 4x2; cell (col 2, row 1) is index 6.
        let idx = 6;
        h.cls[1][idx] = 0.81;
        h.obj[1][idx] = 1.0;
        h.bbox[1][idx * 4..idx * 4 + 4].copy_from_slice(&[0.5, 0.25, 0.0, 2f32.ln()]);
        h.kps[1][idx * 10] = -0.5;
        h.kps[1][idx * 10 + 1] = 0.5;
        let faces = decode(&h, 64, 32, 0.5).unwrap();
        assert_eq!(faces.len(), 1);
        let f = &faces[0];
        assert!((f.score - 0.9).abs() < 1e-6, "score is sqrt(cls*obj): {}", f.score);
        // centre ((2 + 0.5) * 16, (1 + 0.25) * 16) = (40, 20); size (16, 32)
        assert_eq!(f.bbox, BBox { x: 32.0, y: 4.0, width: 16.0, height: 32.0 });
        assert_eq!(f.landmarks[0], [24.0, 24.0]);
        assert_eq!(f.landmarks[1], [32.0, 16.0]);
    }

    #[test]
    fn drops_cells_below_threshold_and_clamps_scores() {
        let mut h = silent_heads(64, 32);
        h.cls[0][3] = 0.3;
        h.obj[0][3] = 0.3;
        h.cls[2][0] = 1.7; // out of range: clamped to 1
        h.obj[2][0] = 1.0;
        h.cls[1][0] = f32::NAN;
        h.obj[1][0] = 1.0;
        let faces = decode(&h, 64, 32, 0.5).unwrap();
        assert_eq!(faces.len(), 1);
        assert_eq!(faces[0].score, 1.0);
    }

    #[test]
    fn rejects_heads_that_do_not_fit_the_grid() {
        let mut h = silent_heads(64, 32);
        h.kps[2].pop();
        assert!(matches!(decode(&h, 64, 32, 0.5), Err(VisionError::UnexpectedOutput { .. })));
    }

    fn det(x: f32, score: f32) -> Detection {
        Detection { bbox: BBox { x, y: 0.0, width: 10.0, height: 10.0 }, score, landmarks: [[0.0; 2]; 5] }
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        // x=1 overlaps x=0 with IoU 9/11 > 0.3; x=6 overlaps x=0 with IoU 4/16 = 0.25 and survives.
        let kept = nms(vec![det(1.0, 0.8), det(0.0, 0.9), det(6.0, 0.7), det(30.0, 0.6)], 0.3);
        let xs: Vec<f32> = kept.iter().map(|d| d.bbox.x).collect();
        assert_eq!(xs, [0.0, 6.0, 30.0]);
    }

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = BBox { x: 0.0, y: 0.0, width: 10.0, height: 10.0 };
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&BBox { x: 20.0, ..a }), 0.0);
        assert!((a.iou(&BBox { x: 5.0, ..a }) - 50.0 / 150.0).abs() < 1e-6);
    }

    #[test]
    fn downscales_only_large_images_keeping_aspect() {
        assert_eq!(scaled_size(500, 300, 640), (500, 300));
        assert_eq!(scaled_size(1434, 2333, 640), (393, 640));
        assert_eq!(scaled_size(6400, 10, 640), (640, 1));
        assert_eq!(pad32(393), 416);
        assert_eq!(pad32(640), 640);
    }

    #[test]
    fn tensor_is_bgr_and_zero_padded() {
        let img = RgbImage::from_pixel(2, 1, image::Rgb([10, 20, 30]));
        let t = to_bgr_tensor(&img, 32, 32);
        assert_eq!(t.shape(), [1, 3, 32, 32]);
        assert_eq!([t[[0, 0, 0, 1]], t[[0, 1, 0, 1]], t[[0, 2, 0, 1]]], [30.0, 20.0, 10.0]);
        assert_eq!(t[[0, 0, 0, 2]], 0.0);
        assert_eq!(t[[0, 0, 1, 0]], 0.0);
    }
}
