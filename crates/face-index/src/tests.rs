use super::*;

/// A small deterministic generator (xorshift64*), normal by Box-Muller.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform().max(1e-12), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }

    fn unit(&mut self, dim: usize) -> Vec<f32> {
        unit(&(0..dim).map(|_| self.normal()).collect::<Vec<_>>()).unwrap()
    }
}

fn face(i: u128) -> FaceRef {
    FaceRef { id: Uuid::from_u128(i), subject: Uuid::from_u128(1_000_000 + i / 4) }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f32>() * b.iter().map(|x| x * x).sum::<f32>()).sqrt()
}

/// Faces that are noisy copies of shared centres, like a gallery's people:
/// same-person cosine about 0.6, different people about 0.
fn gallery(rng: &mut Rng, n: usize, dim: usize) -> Vec<Vec<f32>> {
    let centres: Vec<Vec<f32>> = (0..n.div_ceil(4)).map(|_| rng.unit(dim)).collect();
    (0..n)
        .map(|i| {
            let noise = rng.unit(dim);
            let mixed: Vec<f32> =
                centres[i / 4].iter().zip(&noise).map(|(c, e)| 0.6f32.sqrt() * c + 0.4f32.sqrt() * e).collect();
            unit(&mixed).unwrap()
        })
        .collect()
}

fn filled(vectors: &[Vec<f32>]) -> FaceIndex {
    let mut index = FaceIndex::new(mean_direction(vectors[0].len(), vectors.iter().map(Vec::as_slice)));
    for (i, v) in vectors.iter().enumerate() {
        index.insert(face(i as u128), v).unwrap();
    }
    index
}

#[test]
fn finds_the_exact_nearest_face_with_similarities_close_to_exact() {
    let mut rng = Rng(7);
    let vectors = gallery(&mut rng, 4_000, 128);
    let index = filled(&vectors);
    for _ in 0..50 {
        let probe_of = (rng.uniform() * 1_000.0) as usize;
        let noise = rng.unit(128);
        let centre = &vectors[probe_of * 4];
        let probe: Vec<f32> = centre.iter().zip(&noise).map(|(c, e)| 0.7 * c + 0.3 * e).collect();
        let exact =
            (0..vectors.len()).max_by(|&a, &b| cosine(&probe, &vectors[a]).total_cmp(&cosine(&probe, &vectors[b])));
        let found = index.search(&probe, 200, 10).unwrap();
        assert_eq!(found.len(), 10);
        assert_eq!(found[0].face, face(exact.unwrap() as u128));
        assert!(found.windows(2).all(|w| w[0].similarity >= w[1].similarity), "most similar first");
        for c in &found {
            let truth = cosine(&probe, &vectors[c.face.id.as_u128() as usize]);
            assert!((c.similarity - truth).abs() < 0.02, "approximate {} vs exact {truth}", c.similarity);
        }
    }
}

#[test]
fn a_removed_face_is_never_found_and_the_face_moved_into_its_slot_still_is() {
    let mut rng = Rng(11);
    let vectors = gallery(&mut rng, 300, 128);
    let mut index = filled(&vectors);
    assert!(index.remove(Uuid::from_u128(5)));
    assert!(!index.remove(Uuid::from_u128(5)), "already gone");
    assert_eq!(index.len(), 299);
    assert!(!index.contains(Uuid::from_u128(5)));
    let found = index.search(&vectors[5], 300, 300).unwrap();
    assert_eq!(found.len(), 299);
    assert!(found.iter().all(|c| c.face.id != Uuid::from_u128(5)));
    // The last face moved into slot 5: searching for it finds it, with itself.
    let moved = index.search(&vectors[299], 10, 1).unwrap();
    assert_eq!(moved[0].face, face(299));
    assert!(moved[0].similarity > 0.98, "{}", moved[0].similarity);
    // Removing everything leaves an empty index that still answers.
    for i in (0..300).filter(|&i| i != 5) {
        assert!(index.remove(Uuid::from_u128(i)));
    }
    assert!(index.is_empty());
    assert!(index.search(&vectors[0], 10, 10).unwrap().is_empty());
}

#[test]
fn inserting_a_held_face_again_replaces_its_embedding() {
    let mut rng = Rng(3);
    let vectors = gallery(&mut rng, 100, 128);
    let mut index = filled(&vectors);
    let renamed = FaceRef { id: Uuid::from_u128(0), subject: Uuid::from_u128(42) };
    index.insert(renamed, &vectors[50]).unwrap();
    assert_eq!(index.len(), 100);
    let found = index.search(&vectors[50], 100, 2).unwrap();
    let ids: Vec<FaceRef> = found.iter().map(|c| c.face).collect();
    assert!(ids.contains(&renamed) && ids.contains(&face(50)), "{ids:?}");
}

#[test]
fn the_shortlist_keeps_the_nearest_codes_and_ranking_needs_no_more() {
    // With a shortlist of one, the single face returned is the nearest code:
    // the face itself (distance 0).
    let mut rng = Rng(5);
    let vectors = gallery(&mut rng, 500, 128);
    let index = filled(&vectors);
    for i in [0usize, 17, 499] {
        let found = index.search(&vectors[i], 1, 1).unwrap();
        assert_eq!(found[0].face, face(i as u128));
    }
    // A shortlist longer than the index returns every face once.
    let all = index.search(&vectors[0], 10_000, 10_000).unwrap();
    let mut ids: Vec<u128> = all.iter().map(|c| c.face.id.as_u128()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..500).collect::<Vec<_>>());
}

#[test]
fn codes_work_for_any_dimension() {
    let mut rng = Rng(9);
    for dim in [3usize, 64, 65, 512] {
        let vectors = gallery(&mut rng, 64, dim);
        let index = filled(&vectors);
        let found = index.search(&vectors[9], 64, 1).unwrap();
        assert_eq!(found[0].face, face(9), "dim {dim}");
    }
}

#[test]
fn embeddings_it_cannot_hold_are_refused() {
    let mut index = FaceIndex::new(vec![0.0; 4]);
    assert_eq!(index.insert(face(1), &[1.0, 0.0]), Err(IndexError::Dimensions { expected: 4, got: 2 }));
    assert_eq!(index.insert(face(1), &[0.0; 4]), Err(IndexError::NotNormalizable));
    assert_eq!(index.insert(face(1), &[f32::NAN, 0.0, 0.0, 1.0]), Err(IndexError::NotNormalizable));
    assert!(index.is_empty());
    assert_eq!(index.search(&[1.0; 3], 1, 1), Err(IndexError::Dimensions { expected: 4, got: 3 }));
}

#[test]
fn the_centre_is_the_mean_unit_direction() {
    let centre = mean_direction(2, [[2.0f32, 0.0].as_slice(), &[0.0, 3.0], &[0.0, 0.0]]);
    assert_eq!(centre, vec![0.5, 0.5], "zero vectors are skipped, the others count as unit vectors");
    assert_eq!(mean_direction(2, std::iter::empty()), vec![0.0, 0.0]);
}
