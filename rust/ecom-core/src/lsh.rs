//! MinHash LSH over token sets (products, categories, pages of a session or event), on the
//! maintained `gaoya` MinHasher. Signatures are deterministic (fixed seed) so the live path
//! and training agree bit for bit.
use fnv::FnvBuildHasher;
use gaoya::minhash::{MinHasher, MinHasher64V1};
use std::hash::{Hash, Hasher};

/// LSH parameters: permutations in a signature and bands it is cut into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LshParams {
    /// Number of hash permutations (signature length).
    pub num_perm: usize,
    /// Number of bands; num_perm must be a multiple of it.
    pub num_bands: usize,
}

/// The parameters the live job uses unless configured otherwise.
pub const DEFAULT_PARAMS: LshParams = LshParams { num_perm: 32, num_bands: 8 };

/// Computes signatures and band buckets for token sets.
#[derive(Clone)]
pub struct Lsh {
    params: LshParams,
    hasher: MinHasher64V1<FnvBuildHasher>,
}

impl std::fmt::Debug for Lsh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lsh").field("params", &self.params).finish()
    }
}

/// LSH parameters that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LSH parameters: num_perm {num_perm} must be > 0 and a multiple of num_bands {num_bands} (> 0)")]
pub struct BadParams {
    /// The rejected permutation count.
    pub num_perm: usize,
    /// The rejected band count.
    pub num_bands: usize,
}

impl Lsh {
    /// Builds the hasher; fails when num_perm is not a positive multiple of num_bands.
    pub fn new(params: LshParams) -> Result<Self, BadParams> {
        if params.num_bands == 0 || params.num_perm == 0 || !params.num_perm.is_multiple_of(params.num_bands) {
            return Err(BadParams { num_perm: params.num_perm, num_bands: params.num_bands });
        }
        // gaoya's default seed (3) is fixed, which is what makes signatures reproducible.
        Ok(Self { params, hasher: MinHasher64V1::new(params.num_perm) })
    }

    /// The parameters in use.
    pub fn params(&self) -> LshParams {
        self.params
    }

    /// MinHash signature of a token set (num_perm values). An empty set gives all zeros.
    pub fn signature<T: Hash>(&self, tokens: impl IntoIterator<Item = T>) -> Vec<u64> {
        self.hasher.create_signature(tokens.into_iter())
    }

    /// One bucket hash per band: sets that share any bucket are LSH candidates.
    pub fn band_buckets(&self, signature: &[u64]) -> Vec<u64> {
        let rows = self.params.num_perm / self.params.num_bands;
        signature
            .chunks(rows)
            .enumerate()
            .map(|(band, rows)| {
                // FNV is fixed by its spec, so buckets stored by training stay valid across
                // Rust releases; the band index keeps equal rows in different bands apart.
                let mut h = fnv::FnvHasher::default();
                band.hash(&mut h);
                rows.hash(&mut h);
                h.finish()
            })
            .collect()
    }

    /// Estimated Jaccard similarity of two signatures (share of equal positions).
    pub fn similarity(a: &[u64], b: &[u64]) -> f64 {
        if a.is_empty() || a.len() != b.len() {
            return 0.0;
        }
        a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_bad_params() {
        assert!(Lsh::new(LshParams { num_perm: 10, num_bands: 3 }).is_err());
        assert!(Lsh::new(LshParams { num_perm: 0, num_bands: 0 }).is_err());
    }

    #[test]
    fn similar_sets_share_buckets_and_estimate_jaccard() {
        let lsh = Lsh::new(LshParams { num_perm: 128, num_bands: 32 }).unwrap();
        let a: Vec<String> = (0..100).map(|i| format!("p{i}")).collect();
        let b: Vec<String> = (10..110).map(|i| format!("p{i}")).collect(); // J = 90/110
        let (sa, sb) = (lsh.signature(&a), lsh.signature(&b));
        let est = Lsh::similarity(&sa, &sb);
        assert!((est - 90.0 / 110.0).abs() < 0.12, "estimate {est}");
        let shared = lsh.band_buckets(&sa).iter().zip(lsh.band_buckets(&sb)).filter(|(x, y)| **x == *y).count();
        assert!(shared > 0);
    }

    proptest! {
        #[test]
        fn deterministic_and_shaped(tokens in proptest::collection::vec("[a-z]{1,8}", 0..20)) {
            let lsh = Lsh::new(DEFAULT_PARAMS).unwrap();
            let s1 = lsh.signature(&tokens);
            let s2 = Lsh::new(DEFAULT_PARAMS).unwrap().signature(&tokens);
            prop_assert_eq!(&s1, &s2);
            prop_assert_eq!(s1.len(), DEFAULT_PARAMS.num_perm);
            prop_assert_eq!(lsh.band_buckets(&s1).len(), DEFAULT_PARAMS.num_bands);
        }

        /// A signature is of the set: order and repeats do not change it.
        #[test]
        fn a_signature_depends_only_on_the_set(mut tokens in proptest::collection::vec("[a-z]{1,6}", 1..30)) {
            let lsh = Lsh::new(DEFAULT_PARAMS).unwrap();
            let s = lsh.signature(&tokens);
            tokens.reverse();
            let again: Vec<String> = tokens.iter().chain(tokens.iter().take(3)).cloned().collect();
            prop_assert_eq!(lsh.signature(&again), s);
        }

        /// The estimate is a share in [0, 1], exactly 1 for equal sets, and near the true
        /// Jaccard similarity (128 permutations: standard error at most 0.045; 0.25 is > 5 of it).
        #[test]
        fn similarity_is_a_share_near_the_true_jaccard(
            a in proptest::collection::hash_set(0u32..200, 1..60),
            b in proptest::collection::hash_set(0u32..200, 1..60),
        ) {
            let lsh = Lsh::new(LshParams { num_perm: 128, num_bands: 32 }).unwrap();
            let (sa, sb) = (lsh.signature(&a), lsh.signature(&b));
            let est = Lsh::similarity(&sa, &sb);
            prop_assert!((0.0..=1.0).contains(&est));
            prop_assert_eq!(Lsh::similarity(&sa, &sa), 1.0);
            let jaccard = a.intersection(&b).count() as f64 / a.union(&b).count() as f64;
            prop_assert!((est - jaccard).abs() < 0.25, "estimate {} vs Jaccard {}", est, jaccard);
        }

        /// Two signatures share a band bucket exactly when they agree on all of that band's rows.
        #[test]
        fn buckets_match_exactly_when_band_rows_match(
            a in proptest::collection::vec(0u8..6, 1..8),
            b in proptest::collection::vec(0u8..6, 1..8),
        ) {
            let lsh = Lsh::new(LshParams { num_perm: 16, num_bands: 8 }).unwrap();
            let (sa, sb) = (lsh.signature(&a), lsh.signature(&b));
            let (ba, bb) = (lsh.band_buckets(&sa), lsh.band_buckets(&sb));
            for (band, (rows_a, rows_b)) in sa.chunks(2).zip(sb.chunks(2)).enumerate() {
                prop_assert_eq!(rows_a == rows_b, ba[band] == bb[band]);
            }
        }
    }
}
