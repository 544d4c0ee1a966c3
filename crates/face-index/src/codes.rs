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

    /// The `keep` faces whose codes best agree with the centred query, among
    /// (at least) the `k` whose codes are nearest to its code.
    ///
    /// Nearest codes: Hamming distance, with the cutoff that admits about
    /// `k` faces estimated from an even sample, so the codes are read once,
    /// in order. Agreement: the sum of the query's components signed by the
    /// face's bits, far closer to the true similarity than a Hamming
    /// distance, computed while the code is at hand. Large indexes are
    /// scanned by several threads, each over its own range of faces.
    pub(crate) fn shortlist(&self, centred: &[f32], k: usize, keep: usize) -> Vec<usize> {
        let faces = self.bits.len() / self.words;
        if faces <= keep {
            return (0..faces).collect();
        }
        let query = self.encode(centred);
        let tables = agreement_tables(centred);
        let mut cutoff = self.estimated_cutoff(&query, k);
        let found = loop {
            let found = self.scan(&query, &tables, cutoff);
            if found.len() >= k.min(faces) || cutoff >= self.dim as u32 {
                break found;
            }
            cutoff += 2;
        };
        let mut found = found;
        if found.len() > keep {
            found.select_nth_unstable_by(keep - 1, |a, b| b.0.total_cmp(&a.0));
            found.truncate(keep);
        }
        found.into_iter().map(|(_, slot)| slot).collect()
    }

    /// The Hamming distance within which about `k` faces lie (a little more
    /// than that), judged from the distances of an even sample of faces.
    fn estimated_cutoff(&self, query: &[u64], k: usize) -> u32 {
        let faces = self.bits.len() / self.words;
        // Blocks of neighbouring faces spread over the index: read in order,
        // where single faces at a stride would each cost a cache miss.
        let blocks = CUTOFF_SAMPLE / CUTOFF_BLOCK;
        let mut sample: Vec<u32> = (0..blocks)
            .flat_map(|b| {
                let start = b * faces / blocks;
                start..(start + CUTOFF_BLOCK).min(faces)
            })
            .map(|slot| self.distance(slot, query))
            .collect();
        sample.sort_unstable();
        // The sample's share of k, with room for the sampling error.
        let rank = (k as f64 * sample.len() as f64 / faces as f64 * 1.25).ceil() as usize + 2;
        sample[rank.min(sample.len() - 1)]
    }

    /// Every face within `cutoff` of `query`, with its agreement score.
    fn scan(&self, query: &[u64], tables: &[[f32; 256]], cutoff: u32) -> Vec<(f32, usize)> {
        let faces = self.bits.len() / self.words;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(faces / FACES_PER_THREAD).max(1);
        let per_thread = faces.div_ceil(threads);
        let range = |t: usize| t * per_thread..((t + 1) * per_thread).min(faces);
        let scan_range = |slots: std::ops::Range<usize>| -> Vec<(f32, usize)> {
            let mut found = Vec::new();
            match *query {
                // SFace's 128 dimensions: two words, unrolled.
                [a, b] => {
                    let bits = &self.bits[slots.start * 2..slots.end * 2];
                    for (i, c) in bits.chunks_exact(2).enumerate() {
                        if (c[0] ^ a).count_ones() + (c[1] ^ b).count_ones() <= cutoff {
                            found.push((agreement(c, tables), slots.start + i));
                        }
                    }
                }
                _ => {
                    for slot in slots {
                        if self.distance(slot, query) <= cutoff {
                            found.push((agreement(self.code(slot), tables), slot));
                        }
                    }
                }
            }
            found
        };
        std::thread::scope(|scope| {
            let others: Vec<_> = (1..threads).map(|t| scope.spawn(move || scan_range(range(t)))).collect();
            let mut found = scan_range(range(0));
            for other in others {
                found.extend(other.join().expect("a scan does not panic"));
            }
            found
        })
    }

    fn code(&self, slot: usize) -> &[u64] {
        &self.bits[slot * self.words..(slot + 1) * self.words]
    }

    fn distance(&self, slot: usize, query: &[u64]) -> u32 {
        self.code(slot).iter().zip(query).map(|(x, q)| (x ^ q).count_ones()).sum()
    }
}

/// Faces per scanning thread at least.
const FACES_PER_THREAD: usize = 200_000;
/// Faces whose distances estimate the shortlist's cutoff, in blocks.
const CUTOFF_SAMPLE: usize = 16_384;
const CUTOFF_BLOCK: usize = 1_024;

/// For each byte of a code, the sum of its 8 query components signed by
/// the byte's bits, for every byte value.
fn agreement_tables(centred: &[f32]) -> Vec<[f32; 256]> {
    centred
        .chunks(8)
        .map(|dims| {
            let mut table = [0f32; 256];
            for (byte, sum) in table.iter_mut().enumerate() {
                *sum = dims.iter().enumerate().map(|(k, x)| if byte >> k & 1 == 1 { *x } else { -*x }).sum();
            }
            table
        })
        .collect()
}

fn agreement(code: &[u64], tables: &[[f32; 256]]) -> f32 {
    let mut sum = 0f32;
    for (w, word) in code.iter().enumerate() {
        for (b, table) in tables[w * 8..].iter().take(8).enumerate() {
            sum += table[((word >> (8 * b)) & 0xff) as usize];
        }
    }
    sum
}
