//! Brute-force cosine top-k. A job's corpus is embedded for that job only and then thrown away
//! with the VM, so an index would cost more to build than the one scan it would save.

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Cosine similarity of `a` and `b` (0 when either is zero or their lengths differ).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na * nb)
}

/// The `k` vectors most similar to `query`, as (index, cosine), most similar first; ties go to
/// the lower index, so the order is deterministic. A NaN similarity ranks last.
pub fn top_k(query: &[f32], vectors: &[Vec<f32>], k: usize) -> Vec<(usize, f32)> {
    let mut scored: Vec<(usize, f32)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i, cosine(query, v)))
        .map(|(i, s)| (i, if s.is_nan() { f32::NEG_INFINITY } else { s }))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hand_computed_case() {
        // query (1, 0); vectors at 0°, 90°, 45°, 180°, and (3, 4) (cos = 0.6).
        let q = [1.0, 0.0];
        let v = vec![
            vec![2.0, 0.0],
            vec![0.0, 1.0],
            vec![1.0, 1.0],
            vec![-1.0, 0.0],
            vec![3.0, 4.0],
        ];
        let top = top_k(&q, &v, 3);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![0, 2, 4]);
        assert!((top[0].1 - 1.0).abs() < 1e-6);
        assert!((top[1].1 - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!((top[2].1 - 0.6).abs() < 1e-6);
        // k larger than the corpus returns everything, the opposite vector last.
        let all = top_k(&q, &v, 10);
        assert_eq!(all.len(), 5);
        assert_eq!(all[4].0, 3);
        assert!((all[4].1 + 1.0).abs() < 1e-6);
    }

    #[test]
    fn ties_go_to_the_lower_index_and_nan_ranks_last() {
        let q = [1.0, 1.0];
        let v = vec![vec![f32::NAN, 1.0], vec![1.0, 1.0], vec![2.0, 2.0]];
        let top = top_k(&q, &v, 3);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2, 0]);
    }

    #[test]
    fn normalize_and_degenerate_inputs() {
        let mut v = [3.0, 4.0];
        normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let mut z = [0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, [0.0, 0.0]);
        assert_eq!(cosine(&[1.0], &[1.0, 2.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 2.0]), 0.0);
    }
}
