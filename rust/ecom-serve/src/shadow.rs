//! Shadow scoring: a candidate version (models/SHADOW, `ecom models shadow`) scores every Score
//! row beside the serving one, and its score rides in the same answer
//! (ScoreResponse.shadow_probability) without changing it. The job keeps it on the event and the
//! session, so both versions are judged on the same sessions at the same decision points. It
//! costs the answer one more batched XGBoost call, about 1 µs a row (docs/BENCHMARKS.md, A
//! version in shadow); a row the candidate cannot take, or a candidate that fails, leaves the
//! answer as it was and is counted.
use crate::model::Model;
use crate::score::Scorer;
use ecom_proto::v1::{ScoreRequest, ScoreResponse};

/// Adds `shadow`'s score of each of `reqs` to its answer in `out` (same order).
pub(crate) fn score_into(shadow: &Model, reqs: &[ScoreRequest], out: &mut [ScoreResponse]) {
    let mut x = Vec::with_capacity(reqs.len() * shadow.names.len());
    let mut kept = Vec::with_capacity(reqs.len());
    for (i, r) in reqs.iter().enumerate() {
        let at = x.len();
        match Scorer::row(shadow, r, None, &mut x) {
            Ok(()) => kept.push(i),
            Err(_) => x.truncate(at),
        }
    }
    metrics::counter!("ecom_shadow_skipped_rows_total").increment((reqs.len() - kept.len()) as u64);
    if kept.is_empty() {
        return;
    }
    match shadow.score_rows(&x, &vec![false; kept.len()]) {
        Ok(scored) => {
            for (&i, s) in kept.iter().zip(scored) {
                out[i].shadow_probability = Some(s.probability);
                out[i].shadow_model_version = shadow.version.clone();
            }
            metrics::counter!("ecom_shadow_scored_rows_total").increment(kept.len() as u64);
        }
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), version = shadow.version, "shadow scoring failed");
            metrics::counter!("ecom_shadow_failed_rows_total").increment(kept.len() as u64);
        }
    }
}
