//! The neighbour features: purchase counts per LSH band bucket of ended sessions. Training
//! computes them in time order and writes the final index as `neighbours.json`; serve and the
//! in-process scorer load it to compute the same two features live.
use ecom_core::features;
use std::collections::HashMap;

/// Features added to ecom-core's schema by training: from similar earlier sessions.
pub const NEIGHBOUR_NAMES: [&str; 2] = ["neighbour_purchase_rate", "neighbour_sessions_log"];

/// All feature names of the model, in column order.
pub fn feature_names() -> Vec<String> {
    features::NAMES.iter().chain(NEIGHBOUR_NAMES.iter()).map(|s| s.to_string()).collect()
}

/// Purchase counts per LSH band bucket of ended sessions: the neighbour features, and the index
/// `ecom serve` loads to compute them live.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct NeighbourIndex {
    /// Band bucket -> (sessions, purchases).
    pub buckets: HashMap<u64, (u32, u32)>,
    /// Purchase rate of all sessions in the index: the prior live scoring smooths towards
    /// (training uses the rate of the sessions ended so far).
    #[serde(default)]
    pub prior: f64,
}

impl NeighbourIndex {
    /// Adds an ended session.
    pub fn add(&mut self, buckets: &[u64], purchased: bool) {
        for b in buckets {
            let e = self.buckets.entry(*b).or_default();
            e.0 += 1;
            e.1 += u32::from(purchased);
        }
    }

    /// (purchase rate among sessions sharing a bucket, smoothed towards `prior`; log1p of
    /// how many shared one).
    pub fn features(&self, buckets: &[u64], prior: f64) -> [f64; 2] {
        let (n, p) = buckets
            .iter()
            .filter_map(|b| self.buckets.get(b))
            .fold((0u64, 0u64), |(n, p), (bn, bp)| (n + u64::from(*bn), p + u64::from(*bp)));
        // Ten pseudo-sessions at the prior rate keep rare buckets from shouting.
        let rate = (p as f64 + 10.0 * prior) / (n as f64 + 10.0);
        [rate, (n as f64).ln_1p()]
    }
}
