//! Shadow scoring: a candidate version (models/SHADOW) scores every Score.PredictBatch row
//! beside the serving one, and each batch's scores go to a [`Publish`] as one [`ShadowBatch`]
//! (`ecom serve`: one ecom.shadow record), never into an answer. It runs after the answer is made, on at most
//! [`SHADOW_IN_FLIGHT`] batches at once: while those are busy a batch's shadow scores are
//! dropped and counted (`ecom_shadow_dropped_rows_total`), so no queue builds up behind the
//! answers. It shares the CPU with them all the same (docs/BENCHMARKS.md, A version in shadow).
use crate::model::{Model, ModelStore};
use crate::score::Scorer;
use ecom_core::now_ms;
use ecom_proto::v1::{ScoreRequest, ScoreResponse, ShadowBatch, ShadowScore};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Batches scored in shadow at once.
pub const SHADOW_IN_FLIGHT: usize = 4;

/// Where a batch's shadow scores go. Called on a blocking thread, never with an empty batch;
/// must not block for long.
#[derive(Clone)]
pub struct Publish(pub Arc<dyn Fn(ShadowBatch) + Send + Sync>);

impl std::fmt::Debug for Publish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Publish")
    }
}

/// The shadow version's store and where its scores go.
#[derive(Debug, Clone)]
pub struct Shadow {
    store: Arc<ModelStore>,
    publish: Publish,
    in_flight: Arc<Semaphore>,
}

impl Shadow {
    /// Shadow scoring from `store` (a [`ModelStore::shadow`]) to `publish`.
    pub fn new(store: Arc<ModelStore>, publish: Publish) -> Self {
        Self { store, publish, in_flight: Arc::new(Semaphore::new(SHADOW_IN_FLIGHT)) }
    }

    /// Scores `reqs` with the shadow version, when one is loaded and it is not `serving`, on a
    /// blocking thread, and publishes the scores with the `answers` they stand beside. Returns
    /// at once. A row the shadow version cannot take (a feature schema of the serving model's
    /// own), or with no event id or event time to join it by, is skipped and counted.
    pub(crate) fn after(&self, serving: &Model, reqs: &[ScoreRequest], answers: &[ScoreResponse]) {
        let Some(m) = self.store.get() else { return };
        if m.version == serving.version {
            return;
        }
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            metrics::counter!("ecom_shadow_dropped_rows_total").increment(reqs.len() as u64);
            return;
        };
        let reqs = reqs.to_vec();
        let served: Vec<(String, f64)> =
            answers.iter().map(|a| (a.model_version.clone(), a.purchase_probability)).collect();
        let publish = self.publish.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let scores = score(&m, &reqs, &served);
            if !scores.is_empty() {
                publish.0(ShadowBatch { scores });
            }
        });
    }
}

/// The shadow scores of the rows `m` can take and the job can join.
fn score(m: &Model, reqs: &[ScoreRequest], served: &[(String, f64)]) -> Vec<ShadowScore> {
    let mut x = Vec::with_capacity(reqs.len() * m.names.len());
    let mut kept = Vec::with_capacity(reqs.len());
    for (i, r) in reqs.iter().enumerate() {
        if r.event_id.is_empty() || r.event_time_ms <= 0 {
            continue;
        }
        let at = x.len();
        match Scorer::row(m, r, None, &mut x) {
            Ok(()) => kept.push(i),
            Err(_) => x.truncate(at),
        }
    }
    metrics::counter!("ecom_shadow_skipped_rows_total").increment((reqs.len() - kept.len()) as u64);
    let scored = match m.score_rows(&x, &vec![false; kept.len()]) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), version = m.version, "shadow scoring failed");
            metrics::counter!("ecom_shadow_dropped_rows_total").increment(kept.len() as u64);
            return Vec::new();
        }
    };
    let at = now_ms();
    kept.iter()
        .zip(scored)
        .map(|(&i, s)| ShadowScore {
            event_id: reqs[i].event_id.clone(),
            session_id: reqs[i].session_id.clone(),
            event_time_ms: reqs[i].event_time_ms,
            model_version: m.version.clone(),
            purchase_probability: s.probability,
            serving_version: served[i].0.clone(),
            serving_probability: served[i].1,
            scored_at_ms: at,
        })
        .collect()
}
