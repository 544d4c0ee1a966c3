//! YuNet (OpenCV model zoo, 2023mar): an anchor-free detector with 5 landmarks.
//!
//! Pre- and post-processing follow OpenCV's `FaceDetectorYN` so that our boxes
//! and landmarks match the reference: BGR float input in 0..255, right/bottom
//! zero padding to a multiple of 32, per-stride decoding, greedy NMS on
//! integer boxes. Downscales use OpenCV's exact bilinear resize.
//!
//! Coarse to fine: candidates come from the photo fitted into `max_side`
//! (large faces) and from the scale where the smallest face wanted is 16
//! pixels wide ([`SMALLEST_NET_FACE`]), at a low score; each candidate is then detected again on a
//! crop around it at the photo's own resolution, on the photo's anchor grid.
//! Faces keep the landmarks OpenCV's pipeline finds with the detector at the
//! photo's own size, at a fraction of that run's cost.

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
    /// The coarse level: the photo fitted into this longest side, where large
    /// faces (which YuNet misses or misplaces at full resolution) are found.
    pub max_side: u32,
    /// Smallest face searched for, in pixels of the photo (box width): a second
    /// level at the scale where such a face is [`SMALLEST_NET_FACE`] pixels
    /// wide looks for it. 0 searches the coarse level only.
    pub min_face: u32,
    /// Minimum face score, sqrt(cls * obj), in [0, 1].
    pub score_threshold: f32,
    /// Minimum score of a candidate on the search levels, before refinement
    /// decides with `score_threshold`: small faces score low when shrunk.
    pub candidate_threshold: f32,
    /// Boxes overlapping a better one by more than this IoU are dropped.
    pub nms_threshold: f32,
    pub intra_threads: usize,
}

impl Default for YuNetConfig {
    fn default() -> Self {
        Self {
            max_side: 640,
            min_face: 24,
            score_threshold: 0.6,
            candidate_threshold: 0.2,
            nms_threshold: 0.3,
            intra_threads: 1,
        }
    }
}

/// Width, in network pixels, at which YuNet still proposes every face as a
/// candidate at score 0.2 (measured on the small-faces canvases: at 16 px all
/// 49 faces, at 14 px 47, at 12 px 44-45 even at score 0.1).
pub const SMALLEST_NET_FACE: f64 = 16.0;
/// Faces up to this wide are refined at the photo's own resolution, as
/// OpenCV's pipeline sees them; wider ones on a crop scaled to this width,
/// since YuNet misplaces faces much larger than its biggest anchors (measured:
/// a face boxed 232 px wide at full size scores 0.95, 457 px 0.85, and at
/// about 700 px it is boxed twice, both wrong).
pub const REFINE_FACE: f64 = 384.0;

pub struct YuNet {
    session: Session,
    input_name: String,
    /// Set when the model has a fixed input size; otherwise inputs are padded
    /// to a multiple of 32 (and the search levels and refinement are possible).
    fixed_input: Option<(usize, usize)>,
    config: YuNetConfig,
}

impl YuNet {
    pub fn load(env: &Environment, path: &Path, config: YuNetConfig) -> Result<Self, VisionError> {
        let session = crate::runtime::load_session_for_varying_sizes(env, path, config.intra_threads)?;
        let input = &session.inputs()[0];
        let input_name = input.name().to_owned();
        let fixed_input = input.dtype().tensor_shape().and_then(|s| match (s.get(2), s.get(3)) {
            (Some(&h), Some(&w)) if h > 0 && w > 0 => Some((w as usize, h as usize)),
            _ => None,
        });
        Ok(Self { session, input_name, fixed_input, config })
    }

    /// Faces in `image` scored at least `threshold`, after NMS, in its pixels.
    fn run(&mut self, image: &RgbImage, threshold: f32) -> Result<Vec<Detection>, VisionError> {
        let (w, h) = image.dimensions();
        let (pad_w, pad_h) = self.fixed_input.unwrap_or((pad32(w), pad32(h)));
        let input = to_bgr_tensor(image, pad_w, pad_h);
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
        let faces = decode(&Heads::from_vec(heads), pad_w, pad_h, threshold)?;
        Ok(nms(faces, self.config.nms_threshold))
    }

    /// As [`Self::run`], in tiles of at most [`MAX_RUN_SIDE`] (plus up to 31)
    /// pixels a side overlapping by [`TILE_OVERLAP`], so that a run's memory
    /// stays bounded on photos up to the pixel limit (a 4000x3000 run at full
    /// size took 710 MB); a face in an overlap, found twice, is kept once.
    fn run_tiled(&mut self, image: &RgbImage, threshold: f32) -> Result<Vec<Detection>, VisionError> {
        let (w, h) = image.dimensions();
        if w <= MAX_RUN_SIDE && h <= MAX_RUN_SIDE {
            return self.run(image, threshold);
        }
        let mut faces = Vec::new();
        for &(y, th) in &tiles(h) {
            for &(x, tw) in &tiles(w) {
                let tile = image::imageops::crop_imm(image, x, y, tw, th).to_image();
                let mut found = self.run(&tile, threshold)?;
                found.iter_mut().for_each(|f| rescale(f, 1.0, 1.0, f64::from(x), f64::from(y)));
                faces.extend(found);
            }
        }
        Ok(nms(faces, self.config.nms_threshold))
    }

    /// Faces on the photo scaled to `size` (the photo itself when equal), in photo pixels.
    fn run_scaled(
        &mut self,
        image: &RgbImage,
        size: (u32, u32),
        threshold: f32,
    ) -> Result<Vec<Detection>, VisionError> {
        let (w, h) = image.dimensions();
        if size == (w, h) {
            return self.run_tiled(image, threshold);
        }
        let mut faces = self.run_tiled(&resize_linear(image, size.0, size.1), threshold)?;
        let (fx, fy) = (f64::from(w) / f64::from(size.0), f64::from(h) / f64::from(size.1));
        faces.iter_mut().for_each(|f| rescale(f, fx, fy, 0.0, 0.0));
        Ok(faces)
    }

    /// The candidate detected again on a crop around it, at the photo's own
    /// resolution (or scaled to [`REFINE_FACE`] when larger); `None` when the
    /// crop holds no face above the score threshold where the candidate is.
    fn refine(
        &mut self,
        image: &RgbImage,
        region: &RefineRegion,
        candidate: &Detection,
    ) -> Result<Option<Detection>, VisionError> {
        let crop = region.crop(image);
        let mut faces = self.run(&crop, self.config.score_threshold)?;
        let fx = f64::from(region.width) / f64::from(crop.width());
        let fy = f64::from(region.height) / f64::from(crop.height());
        faces.iter_mut().for_each(|f| rescale(f, fx, fy, f64::from(region.x), f64::from(region.y)));
        let best = faces.into_iter().map(|f| (f.bbox.iou(&candidate.bbox), f)).max_by(|a, b| a.0.total_cmp(&b.0));
        Ok(best.filter(|(iou, _)| *iou >= REFINE_MIN_IOU).map(|(_, f)| f))
    }
}

/// Longest side of one detector run; larger inputs are run in tiles.
pub const MAX_RUN_SIDE: u32 = 2048;
/// How much neighbouring tiles overlap: more than the widest face kept from a
/// full-size run ([`REFINE_FACE`]) with room around it, so every such face lies
/// wholly inside some tile; wider ones come from the 640-px level.
pub const TILE_OVERLAP: u32 = 448;

/// The tiles along a side of `len` pixels, as (start, length): as few as
/// the overlap allows, spread evenly, starting on multiples of 32 (the anchor
/// grid), each at most `MAX_RUN_SIDE` + 31 long, the last ending at the edge.
fn tiles(len: u32) -> Vec<(u32, u32)> {
    if len < MAX_RUN_SIDE + 32 {
        return vec![(0, len)];
    }
    let n = (len - TILE_OVERLAP).div_ceil(MAX_RUN_SIDE - TILE_OVERLAP);
    // Even tiles, plus 32 for the starts' rounding down to the grid.
    let tile = ((len + (n - 1) * TILE_OVERLAP).div_ceil(n) + 32).min(MAX_RUN_SIDE);
    (0..n)
        .map(|i| {
            let start = (u64::from(i) * u64::from(len - tile) / u64::from(n - 1)) as u32 / 32 * 32;
            let length = if i + 1 == n { len - start } else { tile };
            (start, length)
        })
        .collect()
}

/// A refined face must overlap its candidate at least this much.
const REFINE_MIN_IOU: f32 = 0.3;

/// A face proposed by a search level.
struct Candidate {
    face: Detection,
    /// Found on the photo itself, so refinement would repeat the same run.
    full_resolution: bool,
    region: RefineRegion,
}

impl Candidate {
    fn new(face: Detection, full_resolution: bool, image_w: u32, image_h: u32) -> Self {
        let region = RefineRegion::around(&face.bbox, image_w, image_h);
        Self { face, full_resolution, region }
    }

    fn same_face(&self, other: &Candidate, nms_threshold: f32) -> bool {
        integer_iou(&self.face.bbox, &other.face.bbox) > f64::from(nms_threshold)
    }

    /// Needs a crop of the photo at its own size.
    fn cropped_at_full_size(&self) -> bool {
        !self.full_resolution && self.region.scale >= 1.0
    }
}

/// The sizes the photo is searched at: fitted into `max_side` (large faces),
/// and, when `min_face` needs a finer one, the scale where a face of
/// `min_face` pixels is [`SMALLEST_NET_FACE`] wide (never above the photo's own size).
pub fn search_sizes(w: u32, h: u32, max_side: u32, min_face: u32) -> Vec<(u32, u32)> {
    let coarse = scaled_size(w, h, max_side);
    let mut sizes = vec![coarse];
    if min_face > 0 {
        let scale = (SMALLEST_NET_FACE / f64::from(min_face)).min(1.0);
        let longest = (f64::from(w.max(h)) * scale).round() as u32;
        let fine = scaled_size(w, h, longest.max(1));
        if fine.0 > coarse.0 || fine.1 > coarse.1 {
            sizes.push(fine);
        }
    }
    sizes
}

/// The part of the photo a candidate is refined on, and its scale.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RefineRegion {
    /// Top-left corner in photo pixels; on a multiple of 32 at full
    /// resolution, so the crop's anchor grid is the photo's own.
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    /// Crop pixels per photo pixel: 1, or less for faces above [`REFINE_FACE`].
    scale: f64,
}

impl RefineRegion {
    fn area(&self) -> f64 {
        f64::from(self.width) * f64::from(self.height)
    }

    fn around(b: &BBox, image_w: u32, image_h: u32) -> Self {
        let size = f64::from(b.width.max(b.height));
        let scale = (REFINE_FACE / f64::from(b.width)).min(1.0);
        // Context around the face, as measured against full-resolution runs:
        // a quarter of the face plus 96 crop pixels on every side.
        let margin = 0.25 * size + 96.0 / scale;
        let floor_to = |v: f64, step: u32| ((v.max(0.0) as u32) / step) * step;
        let step = if scale < 1.0 { 1 } else { 32 };
        let x = floor_to(f64::from(b.x) - margin, step).min(image_w.saturating_sub(1));
        let y = floor_to(f64::from(b.y) - margin, step).min(image_h.saturating_sub(1));
        let right = ((f64::from(b.x + b.width) + margin).ceil().max(0.0) as u32).clamp(x + 1, image_w);
        let bottom = ((f64::from(b.y + b.height) + margin).ceil().max(0.0) as u32).clamp(y + 1, image_h);
        Self { x, y, width: right - x, height: bottom - y, scale }
    }

    fn crop(&self, image: &RgbImage) -> RgbImage {
        let crop = image::imageops::crop_imm(image, self.x, self.y, self.width, self.height).to_image();
        if self.scale >= 1.0 {
            return crop;
        }
        let fit = |v: u32| ((f64::from(v) * self.scale).round() as u32).max(1);
        resize_linear(&crop, fit(self.width), fit(self.height))
    }
}

impl Detector for YuNet {
    fn model_id(&self) -> &str {
        MODEL
    }

    /// A fixed-size model sees the photo fitted into `max_side` only. A
    /// dynamic one searches the levels for candidates, then detects each
    /// again on a crop at the photo's own resolution: the landmarks OpenCV's
    /// pipeline finds at full size, for a fraction of a full-size run. As soon
    /// as the crops would cover more than [`MOST_CROPPED`] of the photo (a
    /// crowd), one run over the whole photo at its own size replaces them and
    /// the finer levels.
    fn detect(&mut self, image: &RgbImage) -> Result<Vec<Detection>, VisionError> {
        let (w, h) = image.dimensions();
        if self.fixed_input.is_some() {
            return self.run_scaled(image, scaled_size(w, h, self.config.max_side), self.config.score_threshold);
        }
        let area = f64::from(w) * f64::from(h);
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut whole_photo = false;
        for size in search_sizes(w, h, self.config.max_side, self.config.min_face) {
            let full_resolution = size == (w, h);
            for face in self.run_scaled(image, size, self.config.candidate_threshold)? {
                let c = Candidate::new(face, full_resolution, w, h);
                match candidates.iter_mut().find(|k| k.same_face(&c, self.config.nms_threshold)) {
                    Some(known) if c.face.score > known.face.score => *known = c,
                    Some(_) => {}
                    None => candidates.push(c),
                }
            }
            let cropped: f64 = candidates.iter().filter(|c| c.cropped_at_full_size()).map(|c| c.region.area()).sum();
            if cropped > MOST_CROPPED * area {
                whole_photo = true;
                break;
            }
        }
        let threshold = self.config.score_threshold;
        let mut faces = Vec::new();
        if whole_photo {
            let whole = self.run_tiled(image, threshold)?;
            faces.extend(whole.into_iter().filter(|f| f64::from(f.bbox.width) <= REFINE_FACE));
            candidates.retain(|c| c.region.scale < 1.0);
        }
        for c in candidates {
            if c.full_resolution && c.region.scale >= 1.0 {
                // Already seen at full size: refinement would find it again.
                if c.face.score >= threshold {
                    faces.push(c.face);
                }
            } else {
                faces.extend(self.refine(image, &c.region, &c.face)?);
            }
        }
        Ok(nms(faces, self.config.nms_threshold))
    }
}

/// Share of the photo the refinement crops may cover before one run over the
/// whole photo is cheaper (crops overlap, and each run has a fixed cost).
pub const MOST_CROPPED: f64 = 0.5;

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

/// Maps a detection from a scaled network input back to photo pixels: scaled
/// by `fx`, `fy`, then moved by the input's offset in the photo.
fn rescale(f: &mut Detection, fx: f64, fy: f64, dx: f64, dy: f64) {
    let sx = |v: f32| (f64::from(v) * fx) as f32;
    let sy = |v: f32| (f64::from(v) * fy) as f32;
    let px = |v: f32| (f64::from(v) * fx + dx) as f32;
    let py = |v: f32| (f64::from(v) * fy + dy) as f32;
    f.bbox = BBox { x: px(f.bbox.x), y: py(f.bbox.y), width: sx(f.bbox.width), height: sy(f.bbox.height) };
    for p in &mut f.landmarks {
        *p = [px(p[0]), py(p[1])];
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
    fn searches_a_finer_level_only_where_the_smallest_face_needs_it() {
        // 1920x1280: the 640-px level, and 2/3 scale where a 24-px face is 16 px.
        assert_eq!(search_sizes(1920, 1280, 640, 24), [(640, 427), (1280, 853)]);
        // No small-face level asked for.
        assert_eq!(search_sizes(1920, 1280, 640, 0), [(640, 427)]);
        // 16 px and below: the photo's own size.
        assert_eq!(search_sizes(1920, 1280, 640, 16), [(640, 427), (1920, 1280)]);
        // A photo the 640-px level already sees finely enough.
        assert_eq!(search_sizes(900, 600, 640, 24), [(640, 427)]);
        assert_eq!(search_sizes(500, 300, 640, 24), [(500, 300)]);
    }

    #[test]
    fn refinement_crops_sit_on_the_anchor_grid_inside_the_photo() {
        let face = BBox { x: 250.0, y: 100.0, width: 40.0, height: 50.0 };
        let r = RefineRegion::around(&face, 1920, 1280);
        // Margin 0.25 * 50 + 96 = 108.5 px; the corner floored to a multiple of 32.
        assert_eq!((r.x, r.y, r.scale), (128, 0, 1.0));
        assert_eq!((r.x + r.width, r.y + r.height), (399, 259));
        // Clamped to the photo's edges.
        let corner = RefineRegion::around(&BBox { x: 1900.0, y: 1270.0, width: 30.0, height: 30.0 }, 1920, 1280);
        assert_eq!((corner.x + corner.width, corner.y + corner.height), (1920, 1280));
        assert_eq!((corner.x % 32, corner.y % 32), (0, 0));
        // A face wider than REFINE_FACE is refined on a crop scaled to that width.
        let big = RefineRegion::around(&BBox { x: 400.0, y: 400.0, width: 768.0, height: 900.0 }, 4000, 3000);
        assert_eq!(big.scale, 0.5);
        let crop = big.crop(&RgbImage::new(4000, 3000));
        assert_eq!(crop.width(), (f64::from(big.width) * 0.5).round() as u32);
    }

    #[test]
    fn tiles_cover_every_pixel_on_the_anchor_grid_with_overlap() {
        assert_eq!(tiles(2048), [(0, 2048)]);
        assert_eq!(tiles(2079), [(0, 2079)]);
        // 4000 px: three tiles of about 1632, not 2048s piled at the end.
        let t = tiles(4000);
        assert_eq!(t.len(), 3, "{t:?}");
        assert!(t[0].1 < 1700, "{t:?}");
        for len in [2080, 3000, 4000, 5000, 7746, 40_000] {
            let t = tiles(len);
            assert_eq!(t[0].0, 0);
            assert!(t.iter().all(|(s, l)| s % 32 == 0 && *l < MAX_RUN_SIDE + 32), "{len}: {t:?}");
            let (last, last_len) = t[t.len() - 1];
            assert_eq!(last + last_len, len, "{len}: the last tile reaches the edge");
            for pair in t.windows(2) {
                assert!(pair[0].0 + pair[0].1 >= pair[1].0 + TILE_OVERLAP, "{len}: {t:?} overlap too little");
            }
        }
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
