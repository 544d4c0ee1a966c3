//! An in-memory index of one collection's faces, for recognize's search in
//! collections too large to compare every face in PostgreSQL.
//!
//! Each face is kept twice, compactly: a sign code (one bit per dimension of
//! the unit embedding minus the collection's centre; 16 bytes for 128
//! dimensions) and an 8-bit copy (one byte per dimension and a scale). A
//! search compares the query's code with every face's code (Hamming
//! distance), keeps a shortlist of the closest, and ranks the shortlist by the
//! 8-bit dot product. Both stages are exhaustive over what they read, so
//! unlike a graph index nothing is missed for lack of a path: the only loss is
//! a true neighbour falling out of the shortlist, which the shortlist's size
//! bounds (see `docs/scaling.md` for the measured recall).
//!
//! The similarities it returns are approximate (±0.01); the store re-reads the
//! few faces it keeps from PostgreSQL and computes the exact cosine there, so
//! nothing this index holds ever reaches a client unchecked.
//!
//! Plain data, no I/O, no locks, no threads: a search is single-threaded and
//! takes `&self`, so callers share an index behind a read-write lock.

mod codes;
mod levels;

use std::collections::HashMap;

use uuid::Uuid;

/// A face the index holds: its id and its subject's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaceRef {
    pub id: Uuid,
    pub subject: Uuid,
}

/// A face a search found, with its approximate cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub face: FaceRef,
    pub similarity: f32,
}

/// An embedding the index cannot hold.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IndexError {
    #[error("embedding has {got} dimensions, the index {expected}")]
    Dimensions { expected: usize, got: usize },
    #[error("embedding is zero or not finite")]
    NotNormalizable,
}

/// Faces of the shortlist ranked by their 8-bit copies at least: the rest
/// are dropped by how well their codes agree with the query, which costs a
/// fraction of reading their 8-bit copies (scattered over the whole index).
const RANKED: usize = 1_000;

/// One collection's faces; see the crate documentation.
#[derive(Debug, Clone)]
pub struct FaceIndex {
    dim: usize,
    centre: Vec<f32>,
    codes: codes::Codes,
    levels: levels::Levels,
    faces: Vec<FaceRef>,
    slots: HashMap<Uuid, usize>,
}

impl FaceIndex {
    /// An empty index for `centre.len()`-dimensional embeddings. Codes are
    /// taken around `centre` (see [`mean_direction`]), so that each bit splits
    /// the collection's faces roughly in half.
    pub fn new(centre: Vec<f32>) -> Self {
        let dim = centre.len();
        Self {
            dim,
            codes: codes::Codes::new(dim),
            levels: levels::Levels::new(dim),
            centre,
            faces: Vec::new(),
            slots: HashMap::new(),
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.faces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.faces.is_empty()
    }

    pub fn contains(&self, id: Uuid) -> bool {
        self.slots.contains_key(&id)
    }

    /// Bytes held per face, for sizing (codes, 8-bit copy, ids, slot map).
    pub fn bytes_per_face(&self) -> usize {
        self.codes.bytes_per_face() + self.levels.bytes_per_face() + size_of::<FaceRef>() + 2 * size_of::<Uuid>()
    }

    /// Adds a face, or replaces the embedding of one already held.
    pub fn insert(&mut self, face: FaceRef, embedding: &[f32]) -> Result<(), IndexError> {
        let unit = self.unit(embedding)?;
        let centred: Vec<f32> = unit.iter().zip(&self.centre).map(|(x, c)| x - c).collect();
        match self.slots.get(&face.id) {
            Some(&slot) => {
                self.codes.set(slot, &centred);
                self.levels.set(slot, &unit);
                self.faces[slot] = face;
            }
            None => {
                self.codes.push(&centred);
                self.levels.push(&unit);
                self.slots.insert(face.id, self.faces.len());
                self.faces.push(face);
            }
        }
        Ok(())
    }

    /// Removes a face; false if the index did not hold it.
    pub fn remove(&mut self, id: Uuid) -> bool {
        let Some(slot) = self.slots.remove(&id) else { return false };
        let last = self.faces.len() - 1;
        self.codes.swap_remove(slot);
        self.levels.swap_remove(slot);
        self.faces.swap_remove(slot);
        if slot != last {
            self.slots.insert(self.faces[slot].id, slot);
        }
        true
    }

    /// The `limit` faces most similar to `query`, most similar first: the
    /// `shortlist` faces with the closest codes, ranked by their 8-bit copies.
    pub fn search(&self, query: &[f32], shortlist: usize, limit: usize) -> Result<Vec<Candidate>, IndexError> {
        let unit = self.unit(query)?;
        let centred: Vec<f32> = unit.iter().zip(&self.centre).map(|(x, c)| x - c).collect();
        let slots = self.codes.shortlist(&centred, shortlist.max(limit), (limit * 8).max(RANKED));
        let mut found: Vec<Candidate> = self
            .levels
            .similarities(&unit, &slots)
            .into_iter()
            .zip(slots)
            .map(|(similarity, slot)| Candidate { face: self.faces[slot], similarity })
            .collect();
        found.sort_unstable_by(|a, b| b.similarity.total_cmp(&a.similarity));
        found.truncate(limit);
        Ok(found)
    }

    fn unit(&self, embedding: &[f32]) -> Result<Vec<f32>, IndexError> {
        if embedding.len() != self.dim {
            return Err(IndexError::Dimensions { expected: self.dim, got: embedding.len() });
        }
        unit(embedding).ok_or(IndexError::NotNormalizable)
    }
}

/// Faces whose codes are kept for ranking in a search of `faces` faces: 1 %,
/// at least 2,000. Measured on hard synthetic faces (`docs/scaling.md`): at a
/// million faces 1 % keeps the true nearest face for 300 of 300 probes, 0.5 %
/// for 299.
pub fn shortlist_for(faces: usize) -> usize {
    (faces / 100).clamp(2_000, 50_000)
}

/// The mean of the embeddings' unit vectors: the centre codes are taken
/// around. Face embeddings share a direction (every SFace vector has a large
/// positive component in some dimensions), and codes taken around zero would
/// spend those bits on what all faces have in common.
pub fn mean_direction<'a>(dim: usize, embeddings: impl IntoIterator<Item = &'a [f32]>) -> Vec<f32> {
    let mut sum = vec![0f64; dim];
    let mut n = 0usize;
    for unit in embeddings.into_iter().filter(|e| e.len() == dim).filter_map(unit) {
        sum.iter_mut().zip(&unit).for_each(|(s, x)| *s += f64::from(*x));
        n += 1;
    }
    sum.into_iter().map(|s| if n == 0 { 0.0 } else { (s / n as f64) as f32 }).collect()
}

fn unit(v: &[f32]) -> Option<Vec<f32>> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    (norm.is_finite() && norm > 0.0).then(|| v.iter().map(|x| x / norm).collect())
}

#[cfg(test)]
mod tests;
