//! What the live feature drift is measured against: the training rows' distribution of a
//! version's most important ecom-core features (`reference.json`), and the population stability
//! index (PSI) of a live window's counts in the same bins.
//!
//! PSI = Σ (a − e) · ln(a / e) over the bins, `e` the training share and `a` the live share of
//! each (both floored at 1e-4 so an empty bin stays finite). The usual reading: below 0.1 no
//! shift, 0.1–0.2 a shift to watch, above [`PSI_FLAG`] the sessions no longer look like the
//! training data. A small window reads high by chance alone: with `k` bins and `n` sessions PSI
//! averages about (k − 1) / n when nothing moved, so [`MIN_SESSIONS`] keeps noise from flagging.
//!
//! A change in what buyers do that the features cannot see (concept drift) moves no PSI; it shows
//! as buyers off the model's predictions: [`Calibration`].
use serde::{Deserialize, Serialize};

/// PSI above this flags a feature's window.
pub const PSI_FLAG: f64 = 0.2;
/// PSI above this is a shift to watch.
pub const PSI_WATCH: f64 = 0.1;
/// Fewest sessions in a window for its PSI to count (10 bins: chance alone gives ~0.05).
pub const MIN_SESSIONS: u64 = 200;
/// Features a reference describes: the most important ecom-core ones.
pub const TOP_FEATURES: usize = 6;
/// Bins per feature (deciles of the training rows; fewer where values tie).
pub const BINS: usize = 10;

/// The training rows' distribution of a version's top features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Training rows described.
    pub rows: u64,
    /// The features, most important first (by mean |SHAP| on the test rows).
    pub features: Vec<FeatureReference>,
}

/// One feature's bins and the training rows' share in each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureReference {
    /// ecom-core's name of the feature.
    pub name: String,
    /// Bin edges, ascending: bin `i` holds values in [edges[i−1], edges[i]), the first from −∞,
    /// the last to +∞ (as Elasticsearch's range aggregation counts them).
    pub edges: Vec<f64>,
    /// The training rows' share in each bin (`edges.len() + 1` of them).
    pub fractions: Vec<f64>,
}

impl FeatureReference {
    /// Deciles of `values` (NaN left out) as edges, and each bin's share.
    pub fn of(name: &str, values: &[f64]) -> Self {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        let mut edges: Vec<f64> = (1..BINS).filter_map(|i| v.get(i * v.len() / BINS).copied()).collect();
        edges.dedup();
        // An edge at the minimum would leave the first bin empty by construction.
        if v.first().is_some_and(|lo| edges.first() == Some(lo)) {
            edges.remove(0);
        }
        let mut counts = vec![0u64; edges.len() + 1];
        for x in &v {
            counts[bin(&edges, *x)] += 1;
        }
        let n = v.len().max(1) as f64;
        Self { name: name.to_string(), fractions: counts.iter().map(|c| *c as f64 / n).collect(), edges }
    }

    /// The PSI of live `counts` (one per bin) against the training shares; None when there are
    /// no counts or their number is not the bins'.
    pub fn psi(&self, counts: &[u64]) -> Option<f64> {
        let n: u64 = counts.iter().sum();
        if n == 0 || counts.len() != self.fractions.len() {
            return None;
        }
        Some(
            counts
                .iter()
                .zip(&self.fractions)
                .map(|(c, e)| {
                    let (a, e) = ((*c as f64 / n as f64).max(1e-4), e.max(1e-4));
                    (a - e) * (a / e).ln()
                })
                .sum(),
        )
    }
}

/// The bin of `x`: how many edges are at or below it.
pub fn bin(edges: &[f64], x: f64) -> usize {
    edges.partition_point(|e| *e <= x)
}

/// |z| above which observed buyers are flagged as off the predictions: a calibrated model's
/// buyers lie that far out by chance in 0.27 % of checks.
pub const CALIBRATION_Z_FLAG: f64 = 3.0;

/// Observed buyers against a model's predictions over a set of scored sessions. Under a
/// calibrated model the buyers are a sum of independent Bernoulli(p) draws, so they have mean
/// `expected` = Σ p and variance Σ p (1 − p); `z` is how many of that noise's standard deviations
/// the observed count lies from the mean. The parts add up, so windows pool by [`merge`](Self::merge).
/// The z is evidence, not size: over many sessions a small miscalibration flags too, so read it
/// with [`ratio`](Self::ratio).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub sessions: u64,
    pub purchases: u64,
    /// Σ p: the buyers a calibrated model expects.
    pub expected: f64,
    /// Σ p (1 − p).
    pub variance: f64,
}

impl Calibration {
    /// Counts one session scored `p` that did or did not buy.
    pub fn add(&mut self, p: f64, bought: bool) {
        self.sessions += 1;
        self.purchases += u64::from(bought);
        self.expected += p;
        self.variance += p * (1.0 - p);
    }

    /// `other`'s sessions added to these.
    pub fn merge(&mut self, other: &Self) {
        self.sessions += other.sessions;
        self.purchases += other.purchases;
        self.expected += other.expected;
        self.variance += other.variance;
    }

    /// (observed − expected) / √variance; None without variance (no sessions, or all p ∈ {0, 1}).
    pub fn z(&self) -> Option<f64> {
        (self.variance > 0.0).then(|| (self.purchases as f64 - self.expected) / self.variance.sqrt())
    }

    /// Observed over expected buyers; None when none are expected.
    pub fn ratio(&self) -> Option<f64> {
        (self.expected > 0.0).then(|| self.purchases as f64 / self.expected)
    }

    /// |z| > [`CALIBRATION_Z_FLAG`].
    pub fn flagged(&self) -> bool {
        self.z().is_some_and(|z| z.abs() > CALIBRATION_Z_FLAG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_z_is_in_units_of_the_binomial_noise_and_pools() {
        // 400 sessions at p = 0.1: 40 expected, variance 36, so 58 buyers is z = 3.
        let mut c = Calibration::default();
        for i in 0..400 {
            c.add(0.1, i < 58);
        }
        assert!((c.expected - 40.0).abs() < 1e-9 && (c.variance - 36.0).abs() < 1e-9);
        assert!((c.z().unwrap() - 3.0).abs() < 1e-9 && !c.flagged());
        let mut more = c;
        more.merge(&c);
        // Twice the sessions, the same rate off: √2 times the evidence.
        assert!((more.z().unwrap() - 3.0 * 2f64.sqrt()).abs() < 1e-9 && more.flagged());
        assert!((more.ratio().unwrap() - 1.45).abs() < 1e-9);
        assert_eq!(Calibration::default().z(), None);
    }

    #[test]
    fn deciles_hold_a_tenth_each_and_the_same_data_has_no_shift() {
        let values: Vec<f64> = (0..1000).map(f64::from).collect();
        let r = FeatureReference::of("x", &values);
        assert_eq!(r.edges.len(), 9);
        assert!(r.fractions.iter().all(|f| (f - 0.1).abs() < 1e-9), "{:?}", r.fractions);
        let mut counts = vec![0u64; 10];
        for x in &values {
            counts[bin(&r.edges, *x)] += 1;
        }
        assert!(r.psi(&counts).unwrap().abs() < 1e-9);
    }

    #[test]
    fn ties_merge_bins_and_a_shift_reads_high() {
        // Counts: half the rows are 0.
        let values: Vec<f64> = (0..1000).map(|i| if i < 500 { 0.0 } else { f64::from(i) }).collect();
        let r = FeatureReference::of("views", &values);
        assert_eq!(r.edges.len() + 1, r.fractions.len());
        assert!((r.fractions[0] - 0.5).abs() < 1e-9, "{:?} {:?}", r.edges, r.fractions);
        // Everything in the top bin now.
        let mut shifted = vec![0u64; r.fractions.len()];
        *shifted.last_mut().unwrap() = 500;
        assert!(r.psi(&shifted).unwrap() > PSI_FLAG);
        assert_eq!(r.psi(&[]), None);
    }
}
