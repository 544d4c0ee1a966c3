//! Cosine similarity of two embeddings: what verify reports and what a live
//! track compares its re-embedded face with.

/// The cosine similarity of `a` and `b`; `None` when they differ in length
/// (not of one model) or one has no direction (all zeros). Embeddings are
/// unit length, but stored ones went through f32 storage, so both are normalized.
pub fn cosine(a: &[f32], b: &[f32]) -> Option<f32> {
    if a.len() != b.len() {
        return None;
    }
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let norms = norm(a) * norm(b);
    (norms > 0.0).then(|| dot / norms)
}

#[cfg(test)]
mod tests {
    use super::cosine;

    #[test]
    fn cosine_of_unit_and_scaled_vectors() {
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).unwrap().abs() < 1e-6);
        assert!((cosine(&[0.6, 0.8], &[1.2, 1.6]).unwrap() - 1.0).abs() < 1e-6);
        assert!((cosine(&[1.0, 0.0], &[-2.0, 0.0]).unwrap() + 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), None);
        assert_eq!(cosine(&[], &[]), None);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), None);
    }
}
