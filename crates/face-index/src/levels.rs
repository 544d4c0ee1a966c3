//! 8-bit copies of the unit embeddings, for ranking a shortlist.

/// Each face's unit embedding as `dim` signed levels times a step.
#[derive(Debug, Clone)]
pub(crate) struct Levels {
    dim: usize,
    levels: Vec<i8>,
    steps: Vec<f32>,
}

impl Levels {
    pub(crate) fn new(dim: usize) -> Self {
        Self { dim, levels: Vec::new(), steps: Vec::new() }
    }

    pub(crate) fn bytes_per_face(&self) -> usize {
        self.dim + size_of::<f32>()
    }

    pub(crate) fn push(&mut self, unit: &[f32]) {
        let (levels, step) = quantize(unit);
        self.levels.extend_from_slice(&levels);
        self.steps.push(step);
    }

    pub(crate) fn set(&mut self, slot: usize, unit: &[f32]) {
        let (levels, step) = quantize(unit);
        self.levels[slot * self.dim..(slot + 1) * self.dim].copy_from_slice(&levels);
        self.steps[slot] = step;
    }

    pub(crate) fn swap_remove(&mut self, slot: usize) {
        let last = self.steps.len() - 1;
        if slot != last {
            let (head, tail) = self.levels.split_at_mut(last * self.dim);
            head[slot * self.dim..(slot + 1) * self.dim].copy_from_slice(tail);
        }
        self.levels.truncate(last * self.dim);
        self.steps.swap_remove(slot);
    }

    /// The approximate cosine similarity of `unit` with each face in `slots`.
    pub(crate) fn similarities(&self, unit: &[f32], slots: &[usize]) -> Vec<f32> {
        let (query, query_step) = quantize(unit);
        // 16-bit products (|127 × 127| fits) summed in 32 bits: the
        // multiply-add pairs every x86-64 has (pmaddwd), where 32-bit
        // products would be emulated without SSE4.1.
        let query: Vec<i16> = query.into_iter().map(i16::from).collect();
        slots
            .iter()
            .map(|&slot| {
                let face = &self.levels[slot * self.dim..(slot + 1) * self.dim];
                let dot: i32 = face.iter().zip(&query).map(|(f, q)| i32::from(i16::from(*f) * q)).sum();
                dot as f32 * query_step * self.steps[slot]
            })
            .collect()
    }
}

/// Levels in -127..=127 with the largest magnitude at ±127, and the step.
fn quantize(unit: &[f32]) -> (Vec<i8>, f32) {
    let largest = unit.iter().fold(0f32, |m, x| m.max(x.abs()));
    let step = if largest > 0.0 { largest / 127.0 } else { 1.0 };
    (unit.iter().map(|x| (x / step).round().clamp(-127.0, 127.0) as i8).collect(), step)
}
