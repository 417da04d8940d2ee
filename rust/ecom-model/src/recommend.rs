//! The Recommend index: MinHash signatures of past purchasing sessions (their decision-prefix
//! tokens, as a live session has them) with the products they bought. Training writes it as
//! `recommend.json`; `ecom serve` loads it and answers Recommend.Similar with [`Index::similar`].
use ecom_core::lsh::{Lsh, LshParams};
use std::collections::HashMap;

/// Purchasing sessions kept, most recent first: bounds the file and the scan per request.
pub const MAX_SESSIONS: usize = 200_000;

/// Candidate sessions compared per request at most (a very common bucket is cut here).
pub const MAX_CANDIDATES: usize = 5_000;

/// One past purchasing session.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PastSession {
    /// MinHash signature of the session's tokens.
    pub signature: Vec<u64>,
    /// Products bought.
    pub products: Vec<String>,
}

/// What `recommend.json` holds.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct IndexFile {
    /// Signature length.
    pub num_perm: usize,
    /// Bands per signature.
    pub num_bands: usize,
    /// Past purchasing sessions, oldest first.
    pub sessions: Vec<PastSession>,
}

impl IndexFile {
    /// Keeps the most recent [`MAX_SESSIONS`] (the input is in time order).
    pub fn truncate_to_recent(&mut self) {
        let extra = self.sessions.len().saturating_sub(MAX_SESSIONS);
        self.sessions.drain(..extra);
    }
}

/// A product bought in sessions similar to the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// Product id.
    pub product_id: String,
    /// Estimated Jaccard similarity of the closest session that bought it.
    pub similarity: f64,
    /// Similar sessions that bought it.
    pub sessions: u32,
}

/// The loaded index: sessions by band bucket.
#[derive(Debug)]
pub struct Index {
    lsh: Lsh,
    sessions: Vec<PastSession>,
    by_bucket: HashMap<u64, Vec<u32>>,
}

impl Index {
    /// Builds the bucket lookup; fails on bad LSH parameters or signatures of the wrong length.
    pub fn new(file: IndexFile) -> anyhow::Result<Self> {
        let lsh = Lsh::new(LshParams { num_perm: file.num_perm, num_bands: file.num_bands })?;
        let mut by_bucket: HashMap<u64, Vec<u32>> = HashMap::new();
        for (i, s) in file.sessions.iter().enumerate() {
            anyhow::ensure!(
                s.signature.len() == file.num_perm,
                "session {i} has a signature of {} values, expected num_perm = {}",
                s.signature.len(),
                file.num_perm
            );
            for b in lsh.band_buckets(&s.signature) {
                by_bucket.entry(b).or_default().push(i as u32);
            }
        }
        Ok(Self { lsh, sessions: file.sessions, by_bucket })
    }

    /// Past purchasing sessions held.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The top `k` products bought in sessions sharing a band bucket with `tokens`, by the
    /// similarity of the closest such session, then by how many bought it; and how many
    /// similar sessions were found. Recent sessions are compared first when a bucket is huge.
    pub fn similar(&self, tokens: &[String], k: usize) -> (Vec<Recommendation>, usize) {
        let sig = self.lsh.signature(tokens);
        let mut candidates: Vec<u32> = Vec::new();
        for b in self.lsh.band_buckets(&sig) {
            if let Some(ids) = self.by_bucket.get(&b) {
                candidates.extend(ids);
            }
        }
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        candidates.dedup();
        let found = candidates.len();
        candidates.truncate(MAX_CANDIDATES);
        let mut best: HashMap<&str, (f64, u32)> = HashMap::new();
        for i in candidates {
            let s = &self.sessions[i as usize];
            let sim = Lsh::similarity(&sig, &s.signature);
            for p in &s.products {
                let e = best.entry(p.as_str()).or_insert((0.0, 0));
                e.0 = e.0.max(sim);
                e.1 += 1;
            }
        }
        let mut out: Vec<Recommendation> = best
            .into_iter()
            .map(|(p, (similarity, sessions))| Recommendation { product_id: p.to_string(), similarity, sessions })
            .collect();
        out.sort_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then(b.sessions.cmp(&a.sessions))
                .then_with(|| a.product_id.cmp(&b.product_id))
        });
        out.truncate(k);
        (out, found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_products_of_similar_sessions_only() {
        let lsh = Lsh::new(LshParams { num_perm: 32, num_bands: 16 }).unwrap();
        let sofa = toks(&["c:sofas", "p:S1", "p:S2", "p:S3", "s:nordic"]);
        let lamp = toks(&["c:lamps", "p:L1", "p:L2", "p:L3", "s:industrial"]);
        let file = IndexFile {
            num_perm: 32,
            num_bands: 16,
            sessions: vec![
                PastSession { signature: lsh.signature(&sofa), products: toks(&["S2"]) },
                PastSession { signature: lsh.signature(&sofa), products: toks(&["S2", "S3"]) },
                PastSession { signature: lsh.signature(&lamp), products: toks(&["L1"]) },
            ],
        };
        let idx = Index::new(file).unwrap();
        let (recs, found) = idx.similar(&sofa, 10);
        assert_eq!(found, 2);
        assert_eq!(recs[0], Recommendation { product_id: "S2".into(), similarity: 1.0, sessions: 2 });
        assert_eq!(recs[1].product_id, "S3");
        assert!(recs.iter().all(|r| r.product_id != "L1"));
        assert_eq!(idx.similar(&sofa, 1).0.len(), 1);
        assert!(idx.similar(&toks(&["c:beds", "p:B9"]), 10).0.is_empty());
    }

    #[test]
    fn rejects_signatures_of_the_wrong_length() {
        let file = IndexFile {
            num_perm: 32,
            num_bands: 8,
            sessions: vec![PastSession { signature: vec![1, 2], products: vec![] }],
        };
        assert!(Index::new(file).unwrap_err().to_string().contains("num_perm = 32"));
    }

    #[test]
    fn keeps_the_most_recent_sessions() {
        let mut f = IndexFile { num_perm: 1, num_bands: 1, sessions: Vec::new() };
        for i in 0..MAX_SESSIONS + 3 {
            f.sessions.push(PastSession { signature: vec![i as u64], products: vec![] });
        }
        f.truncate_to_recent();
        assert_eq!(f.sessions.len(), MAX_SESSIONS);
        assert_eq!(f.sessions[0].signature, vec![3]);
    }
}
