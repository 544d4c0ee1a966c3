//! Sign codes: one bit per dimension, compared by Hamming distance.

/// The codes of every face, `words` 64-bit words per face, in slot order.
#[derive(Debug, Clone)]
pub(crate) struct Codes {
    dim: usize,
    words: usize,
    bits: Vec<u64>,
}

impl Codes {
    pub(crate) fn new(dim: usize) -> Self {
        Self { dim, words: dim.div_ceil(64), bits: Vec::new() }
    }

    pub(crate) fn bytes_per_face(&self) -> usize {
        self.words * 8
    }

    /// Bit `i` is set when dimension `i` is positive.
    pub(crate) fn encode(&self, centred: &[f32]) -> Vec<u64> {
        let mut code = vec![0u64; self.words];
        for (i, x) in centred.iter().enumerate() {
            if *x > 0.0 {
                code[i / 64] |= 1 << (i % 64);
            }
        }
        code
    }

    pub(crate) fn push(&mut self, centred: &[f32]) {
        let code = self.encode(centred);
        self.bits.extend_from_slice(&code);
    }

    pub(crate) fn set(&mut self, slot: usize, centred: &[f32]) {
        let code = self.encode(centred);
        self.bits[slot * self.words..(slot + 1) * self.words].copy_from_slice(&code);
    }

    pub(crate) fn swap_remove(&mut self, slot: usize) {
        let last = self.bits.len() / self.words - 1;
        if slot != last {
            let (head, tail) = self.bits.split_at_mut(last * self.words);
            head[slot * self.words..(slot + 1) * self.words].copy_from_slice(tail);
        }
        self.bits.truncate(last * self.words);
    }

    /// The slots of the `k` codes nearest to `query` (ties broken by slot),
    /// in no particular order.
    pub(crate) fn nearest(&self, query: &[u64], k: usize) -> Vec<usize> {
        let distances = self.distances(query);
        // Distances are small integers: count them, find the distance at
        // which the k-th nearest lies, then take everything closer and as
        // many at that distance as still fit.
        let mut histogram = vec![0usize; self.dim + 1];
        distances.iter().for_each(|&d| histogram[usize::from(d)] += 1);
        let (mut cutoff, mut closer) = (0usize, 0usize);
        while cutoff < self.dim && closer + histogram[cutoff] < k {
            closer += histogram[cutoff];
            cutoff += 1;
        }
        let mut at_cutoff = k.saturating_sub(closer);
        let mut slots = Vec::with_capacity(k.min(distances.len()));
        for (slot, &d) in distances.iter().enumerate() {
            let d = usize::from(d);
            if d < cutoff {
                slots.push(slot);
            } else if d == cutoff && at_cutoff > 0 {
                slots.push(slot);
                at_cutoff -= 1;
            }
        }
        slots
    }

    fn distances(&self, query: &[u64]) -> Vec<u16> {
        match *query {
            // SFace's 128 dimensions: two words, unrolled.
            [a, b] => {
                self.bits.chunks_exact(2).map(|c| ((c[0] ^ a).count_ones() + (c[1] ^ b).count_ones()) as u16).collect()
            }
            _ => self
                .bits
                .chunks_exact(self.words)
                .map(|c| c.iter().zip(query).map(|(x, q)| (x ^ q).count_ones()).sum::<u32>() as u16)
                .collect(),
        }
    }
}
