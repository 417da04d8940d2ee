//! Score (XGBoost purchase probability with TreeSHAP reasons) and Recommend (LSH) over the
//! current model of the [`ModelStore`]. Requests are checked field by field before any work.
use crate::batcher::Batcher;
use crate::model::{Model, ModelStore, Scored};
use crate::observe;
use ecom_proto::v1::recommend_server::Recommend as RecommendApi;
use ecom_proto::v1::score_server::Score as ScoreApi;
use ecom_proto::v1::{
    DescribeRequest, ModelInfo, ScoreBatchRequest, ScoreBatchResponse, ScoreRequest, ScoreResponse, ShapReason,
    SimilarBatchRequest, SimilarBatchResponse, SimilarProduct, SimilarRequest, SimilarResponse,
};
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};

/// Rows above which a batch is scored on a blocking thread rather than the request's worker.
const INLINE_ROWS: usize = 32;
/// Most SHAP reasons returned per row.
const MAX_TOP_K: u32 = 64;
/// Most products Recommend.Similar returns.
const MAX_K: u32 = 100;

/// The Score and Recommend services.
#[derive(Debug, Clone)]
pub struct Scorer {
    store: Arc<ModelStore>,
    max_batch: usize,
    batcher: Option<Batcher>,
    /// The shadow version's store (models/SHADOW), when shadow scoring is on.
    shadow: Option<Arc<ModelStore>>,
}

fn no_model(store: &ModelStore) -> Status {
    Status::failed_precondition(format!(
        "no model loaded from {}: run `ecom train` (serve picks up models/CURRENT within seconds)",
        store.dir().display()
    ))
}

impl Scorer {
    /// Services over `store`, accepting batches up to `max_batch`; single rows are coalesced
    /// by `workers` scoring threads, or scored one call each on the request's task when
    /// `workers` is 0.
    pub fn new(store: Arc<ModelStore>, max_batch: usize, workers: usize) -> std::io::Result<Self> {
        let batcher = if workers == 0 { None } else { Some(Batcher::start(workers, 256, 8_192)?) };
        Ok(Self { store, max_batch, batcher, shadow: None })
    }

    /// Scores every row with the shadow version too, when `shadow` (a [`ModelStore::shadow`])
    /// holds one other than the serving version; its score goes beside the answer.
    pub fn with_shadow(self, shadow: Arc<ModelStore>) -> Self {
        Self { shadow: Some(shadow), ..self }
    }

    fn model(&self) -> Result<Arc<Model>, Status> {
        self.store.get().ok_or_else(|| no_model(&self.store))
    }

    /// The shadow version to score beside `serving`, if any.
    fn shadow_of(&self, serving: &Model) -> Option<Arc<Model>> {
        self.shadow.as_ref()?.get().filter(|s| s.version != serving.version)
    }

    /// Checks one request and appends its full feature row to `x`.
    pub(crate) fn row(m: &Model, r: &ScoreRequest, i: Option<usize>, x: &mut Vec<f32>) -> Result<(), Status> {
        let at = || crate::field_at(i);
        let full = if r.feature_schema_hash == m.schema_hash {
            true
        } else if r.feature_schema_hash == m.core_hash {
            false
        } else {
            return Err(Status::invalid_argument(format!(
                "{}feature_schema_hash: {:?} is neither model {}'s schema ({}) nor its ecom-core schema ({}); call Score.Describe",
                at(),
                r.feature_schema_hash, m.version, m.schema_hash, m.core_hash
            )));
        };
        let want = if full { m.names.len() } else { m.core_count };
        if r.features.len() != want {
            return Err(Status::invalid_argument(format!(
                "{}features: {} values, the {} schema has {want}",
                at(),
                r.features.len(),
                if full { "model's" } else { "ecom-core" }
            )));
        }
        if let Some(j) = r.features.iter().position(|v| v.is_infinite()) {
            return Err(Status::invalid_argument(format!(
                "{}features[{j}] ({}): {} is not finite (send NaN for a missing value)",
                at(),
                m.names[j],
                r.features[j]
            )));
        }
        if r.top_k_reasons > MAX_TOP_K {
            return Err(Status::invalid_argument(format!("{}top_k_reasons: {} > {MAX_TOP_K}", at(), r.top_k_reasons)));
        }
        x.extend(r.features.iter().map(|v| *v as f32));
        if !full {
            x.extend(m.neighbour_features(&r.tokens).iter().map(|v| *v as f32));
        }
        Ok(())
    }

    fn answer(m: &Model, r: &ScoreRequest, row: &[f32], s: &Scored) -> ScoreResponse {
        let mut reasons = Vec::new();
        if let (Some(c), k @ 1..) = (&s.contributions, r.top_k_reasons as usize) {
            let mut order: Vec<usize> = (0..c.len()).collect();
            order.sort_by(|&a, &b| c[b].abs().total_cmp(&c[a].abs()));
            reasons = order
                .into_iter()
                .take(k)
                .map(|i| ShapReason {
                    feature: m.names[i].clone(),
                    value: f64::from(row[i]),
                    contribution: f64::from(c[i]),
                })
                .collect();
        }
        ScoreResponse {
            purchase_probability: s.probability,
            model_version: m.version.clone(),
            reasons,
            session_id: r.session_id.clone(),
            ..Default::default()
        }
    }

    /// Scores one request: through the batcher, or on this task when coalescing is off.
    async fn score_one(&self, r: ScoreRequest) -> Result<ScoreResponse, Status> {
        let m = self.model()?;
        let mut x = Vec::with_capacity(m.names.len());
        Self::row(&m, &r, None, &mut x)?;
        let shap = r.top_k_reasons > 0;
        let s = match &self.batcher {
            Some(b) => b.score(m.clone(), x.clone(), shap).await?,
            None => m
                .score(&x, shap)
                .map_err(|e| Status::internal(format!("scoring failed: {e:#}")))?
                .pop()
                .ok_or_else(|| Status::internal("scoring returned no row"))?,
        };
        metrics::counter!("ecom_score_rows_total").increment(1);
        let mut answer = Self::answer(&m, &r, &x, &s);
        if let Some(shadow) = self.shadow_of(&m) {
            crate::shadow::score_into(&shadow, std::slice::from_ref(&r), std::slice::from_mut(&mut answer));
        }
        Ok(answer)
    }

    /// Scores a batch with model `m` on the calling thread: every request checked, then one
    /// XGBoost call (two when only some rows ask for reasons). Blocking. The gRPC method and the
    /// job's in-process scoring (ecom-jni-serve) both answer through this.
    pub fn score_batch_with(m: &Model, reqs: &[ScoreRequest]) -> Result<Vec<ScoreResponse>, Status> {
        let mut x = Vec::with_capacity(reqs.len() * m.names.len());
        for (i, r) in reqs.iter().enumerate() {
            Self::row(m, r, Some(i), &mut x)?;
        }
        let shap: Vec<bool> = reqs.iter().map(|r| r.top_k_reasons > 0).collect();
        let scored = m.score_rows(&x, &shap).map_err(|e| Status::internal(format!("scoring failed: {e:#}")))?;
        let cols = m.names.len();
        Ok(reqs
            .iter()
            .zip(&scored)
            .enumerate()
            .map(|(i, (r, s))| Self::answer(m, r, &x[i * cols..(i + 1) * cols], s))
            .collect())
    }

    /// Answers a Recommend batch with model `m` (FAILED_PRECONDITION when it has no Recommend
    /// index). The gRPC method and the job's in-process recommending both answer through this.
    pub fn similar_batch_with(m: &Model, reqs: &[SimilarRequest]) -> Result<Vec<SimilarResponse>, Status> {
        Self::has_recommend(m)?;
        reqs.iter().enumerate().map(|(i, r)| Self::similar_one(m, r, Some(i))).collect()
    }

    /// Scores a batch on one model version in one XGBoost call, on a blocking thread when it
    /// is large.
    async fn score_all(&self, reqs: Vec<ScoreRequest>) -> Result<Vec<ScoreResponse>, Status> {
        let m = self.model()?;
        let shadow = self.shadow_of(&m);
        let n = reqs.len();
        let work = move || {
            let mut out = Self::score_batch_with(&m, &reqs)?;
            if let Some(shadow) = &shadow {
                crate::shadow::score_into(shadow, &reqs, &mut out);
            }
            Ok::<_, Status>(out)
        };
        let out = if n > INLINE_ROWS {
            tokio::task::spawn_blocking(work).await.map_err(|e| Status::internal(format!("scoring task: {e}")))??
        } else {
            work()?
        };
        metrics::counter!("ecom_score_rows_total").increment(out.len() as u64);
        Ok(out)
    }
}

#[tonic::async_trait]
impl ScoreApi for Scorer {
    async fn predict(&self, request: Request<ScoreRequest>) -> Result<Response<ScoreResponse>, Status> {
        let started = Instant::now();
        let out = self.score_one(request.into_inner()).await;
        observe("Score.Predict", started, out.is_ok());
        Ok(Response::new(out?))
    }

    async fn predict_batch(&self, request: Request<ScoreBatchRequest>) -> Result<Response<ScoreBatchResponse>, Status> {
        let started = Instant::now();
        let reqs = request.into_inner().requests;
        let out = async {
            crate::check_batch(reqs.len(), self.max_batch)?;
            self.score_all(reqs).await
        }
        .await;
        observe("Score.PredictBatch", started, out.is_ok());
        Ok(Response::new(ScoreBatchResponse { responses: out? }))
    }

    async fn describe(&self, _: Request<DescribeRequest>) -> Result<Response<ModelInfo>, Status> {
        let m = self.model()?;
        Ok(Response::new(ModelInfo {
            model_version: m.version.clone(),
            feature_schema_hash: m.schema_hash.clone(),
            feature_names: m.names.clone(),
            core_schema_hash: m.core_hash.clone(),
            core_feature_count: m.core_count as u32,
            loaded_at_ms: m.loaded_at_ms,
            recommend_sessions: m.recommend.len() as u32,
        }))
    }
}

impl Scorer {
    /// Answers one Recommend request with model `m`; `i` names its place in a batch.
    fn similar_one(m: &Model, r: &SimilarRequest, i: Option<usize>) -> Result<SimilarResponse, Status> {
        let at = || crate::field_at(i);
        if r.tokens.is_empty() {
            return Err(Status::invalid_argument(format!(
                "{}tokens: empty; send the session's LSH tokens (ecom-core)",
                at()
            )));
        }
        if r.k > MAX_K {
            return Err(Status::invalid_argument(format!("{}k: {} > {MAX_K}", at(), r.k)));
        }
        let k = if r.k == 0 { 10 } else { r.k as usize };
        let (recs, found) = m.recommend.similar(&r.tokens, k);
        Ok(SimilarResponse {
            products: recs
                .into_iter()
                .map(|p| SimilarProduct { product_id: p.product_id, similarity: p.similarity, sessions: p.sessions })
                .collect(),
            model_version: m.version.clone(),
            similar_sessions: found as u32,
        })
    }

    fn has_recommend(m: &Model) -> Result<(), Status> {
        if m.recommend.is_empty() {
            return Err(Status::failed_precondition(format!(
                "model {} has no Recommend index (recommend.json): retrain with this ecom",
                m.version
            )));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl RecommendApi for Scorer {
    async fn similar(&self, request: Request<SimilarRequest>) -> Result<Response<SimilarResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let out = self.model().and_then(|m| Self::has_recommend(&m).and_then(|()| Self::similar_one(&m, &r, None)));
        observe("Recommend.Similar", started, out.is_ok());
        Ok(Response::new(out?))
    }

    async fn similar_batch(
        &self,
        request: Request<SimilarBatchRequest>,
    ) -> Result<Response<SimilarBatchResponse>, Status> {
        let started = Instant::now();
        let reqs = request.into_inner().requests;
        let out = crate::check_batch(reqs.len(), self.max_batch)
            .and_then(|()| self.model())
            .and_then(|m| Self::similar_batch_with(&m, &reqs));
        observe("Recommend.SimilarBatch", started, out.is_ok());
        Ok(Response::new(SimilarBatchResponse { responses: out? }))
    }
}
