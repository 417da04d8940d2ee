//! The served model: one version directory of `models/` as `ecom train` writes it (schema.json,
//! xgboost.json, neighbours.json, recommend.json), loaded whole and checked before it serves.
//! [`ModelStore`] swaps a new version in atomically when `models/CURRENT` moves: a request holds
//! the version it started with, so a reload never fails one.
use anyhow::{bail, Context};
use arc_swap::ArcSwapOption;
use ecom_core::lsh::Lsh;
use ecom_core::now_ms;
use ecom_model::neighbours::{NeighbourIndex, NEIGHBOUR_NAMES};
use ecom_model::{read_json, recommend, Schema, NEIGHBOURS_FILE, RECOMMEND_FILE, SCHEMA_FILE};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One score: the purchase probability and, when asked, SHAP contributions (log-odds) per
/// feature in schema order.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Purchase probability.
    pub probability: f64,
    /// Per-feature contributions; the bias is not included.
    pub contributions: Option<Vec<f32>>,
}

/// XGBoost boosters of one model. XGBoost's prediction is thread-safe, but the Rust binding's
/// `Booster` is only `Send`, so concurrent requests each take one of a few copies. The binding
/// reconfigures a booster (costly) whenever it switches between one-row and many-row calls, so
/// each copy only ever serves one of the two.
struct BoosterPool {
    slots: Vec<Mutex<xgb::Booster>>,
    next: AtomicUsize,
}

impl BoosterPool {
    fn load(model: &[u8], copies: usize) -> anyhow::Result<Self> {
        let slots = (0..copies.max(1))
            .map(|_| {
                let mut b = xgb::Booster::load_buffer(model).context("loading the XGBoost model")?;
                // Requests run in parallel; XGBoost's own threads would only contend with them.
                b.set_param("nthread", "1").context("setting nthread")?;
                Ok(Mutex::new(b))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { slots, next: AtomicUsize::new(0) })
    }

    fn with<R>(&self, f: impl FnOnce(&xgb::Booster) -> R) -> R {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Ok(b) = self.slots[(start + i) % n].try_lock() {
                return f(&b);
            }
        }
        // All busy: wait for ours. A poisoned slot still holds a usable booster (XGBoost
        // calls do not leave it half-changed).
        let b = self.slots[start].lock().unwrap_or_else(|e| e.into_inner());
        f(&b)
    }
}

/// A loaded model version.
pub struct Model {
    /// Version name (the directory under models/).
    pub version: String,
    /// Hash of the model's full feature schema.
    pub schema_hash: String,
    /// Hash of ecom-core's feature schema the model was trained on.
    pub core_hash: String,
    /// Feature names in column order.
    pub names: Vec<String>,
    /// Leading columns that are ecom-core features; the rest are neighbour features.
    pub core_count: usize,
    /// When this version was loaded (ms since epoch).
    pub loaded_at_ms: i64,
    /// The Recommend index of this version.
    pub recommend: recommend::Index,
    lsh: Lsh,
    neighbours: NeighbourIndex,
    one_row: BoosterPool,
    many_rows: BoosterPool,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("version", &self.version).field("schema_hash", &self.schema_hash).finish()
    }
}

fn sigmoid(margin: f64) -> f64 {
    1.0 / (1.0 + (-margin).exp())
}

impl Model {
    /// Loads `dir` (a version directory) and scores one row to prove the booster works.
    pub fn load(dir: &Path, boosters: usize) -> anyhow::Result<Self> {
        let version = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let schema: Schema = read_json(dir, SCHEMA_FILE)?;
        let core_count = schema.names.len().saturating_sub(NEIGHBOUR_NAMES.len());
        if !schema.names[core_count..].iter().eq(NEIGHBOUR_NAMES.iter()) {
            bail!(
                "{}: the last features are {:?}, expected the neighbour features {NEIGHBOUR_NAMES:?}",
                dir.join(SCHEMA_FILE).display(),
                &schema.names[core_count..]
            );
        }
        let lsh = Lsh::new(schema.lsh)?;
        let neighbours: NeighbourIndex = read_json(dir, NEIGHBOURS_FILE)?;
        let rec_path = dir.join(RECOMMEND_FILE);
        let rec_file: recommend::IndexFile = if rec_path.exists() {
            read_json(dir, RECOMMEND_FILE)?
        } else {
            tracing::warn!(dir = %dir.display(), "the version has no recommend.json: Recommend answers FAILED_PRECONDITION until a model with one serves");
            recommend::IndexFile { num_perm: schema.lsh.num_perm, num_bands: schema.lsh.num_bands, sessions: vec![] }
        };
        let recommend = recommend::Index::new(rec_file).with_context(|| format!("{}", rec_path.display()))?;
        let booster_path = dir.join(ecom_model::BOOSTER_FILE);
        let booster = std::fs::read(&booster_path).with_context(|| format!("reading {}", booster_path.display()))?;
        let pool = || BoosterPool::load(&booster, boosters).with_context(|| format!("{}", booster_path.display()));
        let model = Self {
            version,
            schema_hash: schema.hash,
            core_hash: schema.core_hash,
            core_count,
            loaded_at_ms: now_ms(),
            recommend,
            lsh,
            neighbours,
            one_row: pool()?,
            many_rows: pool()?,
            names: schema.names,
        };
        let zeros = vec![0f32; model.names.len()];
        let probe = model.score(&zeros, true).context("scoring a probe row")?;
        let contribs = probe[0].contributions.as_ref().map_or(0, Vec::len);
        if contribs != model.names.len() {
            bail!(
                "{}: the booster gives {contribs} contributions per row, schema.json names {} features",
                dir.display(),
                model.names.len()
            );
        }
        Ok(model)
    }

    /// The neighbour features for a session's tokens, as training computed them.
    pub fn neighbour_features(&self, tokens: &[String]) -> [f64; 2] {
        let sig = self.lsh.signature(tokens);
        self.neighbours.features(&self.lsh.band_buckets(&sig), self.neighbours.prior)
    }

    /// As [`Model::score`], with TreeSHAP only for the rows whose `shap` is true: a batch that
    /// mixes both is scored in two XGBoost calls, since TreeSHAP costs far more than a prediction.
    pub fn score_rows(&self, x: &[f32], shap: &[bool]) -> anyhow::Result<Vec<Scored>> {
        if shap.iter().all(|&s| s) || !shap.iter().any(|&s| s) {
            return self.score(x, shap.first().copied().unwrap_or(false));
        }
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for (row, &s) in x.chunks(self.names.len()).zip(shap) {
            if s { &mut with } else { &mut without }.extend_from_slice(row);
        }
        let mut with = self.score(&with, true)?.into_iter();
        let mut without = self.score(&without, false)?.into_iter();
        shap.iter()
            .map(|&s| {
                if s { with.next() } else { without.next() }.context("XGBoost returned fewer rows than it was given")
            })
            .collect()
    }

    /// Scores row-major `x` (rows × names.len()); with `shap`, one TreeSHAP call gives the
    /// contributions and the probability (their sum is the margin).
    pub fn score(&self, x: &[f32], shap: bool) -> anyhow::Result<Vec<Scored>> {
        let cols = self.names.len();
        let rows = x.len() / cols;
        if rows == 0 {
            return Ok(Vec::new());
        }
        let m = xgb::DMatrix::from_dense(x, rows).context("building the DMatrix")?;
        let pool = if rows == 1 { &self.one_row } else { &self.many_rows };
        if shap {
            let (c, (r, w)) = pool.with(|b| b.predict_contributions(&m)).context("XGBoost TreeSHAP")?;
            anyhow::ensure!(r == rows && w == cols + 1, "TreeSHAP returned {r}×{w}, expected {rows}×{}", cols + 1);
            Ok(c.chunks(w)
                .map(|row| Scored {
                    probability: sigmoid(row.iter().map(|v| f64::from(*v)).sum()),
                    contributions: Some(row[..cols].to_vec()),
                })
                .collect())
        } else {
            let p = pool.with(|b| b.predict(&m)).context("XGBoost predict")?;
            anyhow::ensure!(p.len() == rows, "XGBoost returned {} predictions for {rows} rows", p.len());
            Ok(p.into_iter().map(|p| Scored { probability: f64::from(p), contributions: None }).collect())
        }
    }
}

/// The model a pointer file (models/CURRENT, or models/SHADOW) names, and where versions come
/// from.
pub struct ModelStore {
    dir: PathBuf,
    /// The pointer file: ecom_model::CURRENT or ecom_model::SHADOW.
    pointer: &'static str,
    boosters: usize,
    current: ArcSwapOption<Model>,
    /// The last version that failed to load and why: not tried again until CURRENT moves.
    failed: Mutex<Option<(String, String)>>,
}

impl std::fmt::Debug for ModelStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelStore").field("dir", &self.dir).field("version", &self.version()).finish()
    }
}

impl ModelStore {
    /// An empty store over `dir` (models/); [`ModelStore::refresh`] loads what CURRENT names.
    pub fn new(dir: PathBuf, boosters: usize) -> Self {
        Self { dir, pointer: ecom_model::CURRENT, boosters, current: ArcSwapOption::empty(), failed: Mutex::new(None) }
    }

    /// An empty store of the shadow version (models/SHADOW): unlike CURRENT's, it unloads when
    /// SHADOW goes.
    pub fn shadow(dir: PathBuf, boosters: usize) -> Self {
        Self { pointer: ecom_model::SHADOW, ..Self::new(dir, boosters) }
    }

    /// The model requests should use now.
    pub fn get(&self) -> Option<Arc<Model>> {
        self.current.load_full()
    }

    /// The loaded version, if any.
    pub fn version(&self) -> Option<String> {
        self.current.load().as_ref().map(|m| m.version.clone())
    }

    /// The models directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Why the last version tried failed to load, while CURRENT still names it.
    pub fn load_error(&self) -> Option<String> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(_, why)| why.clone())
    }

    /// The version the pointer names, when it is neither the one loaded nor the one that failed.
    fn wanted(&self) -> Option<String> {
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        ecom_model::pointed(&self.dir, self.pointer).filter(|want| {
            self.version().as_deref() != Some(want.as_str()) && failed.as_ref().map(|f| &f.0) != Some(want)
        })
    }

    /// Loads and swaps in `version`. Blocking (file reads and XGBoost): call from a blocking
    /// thread. On error the old model keeps serving.
    fn load(&self, version: &str) -> anyhow::Result<()> {
        let model = Model::load(&self.dir.join(version), self.boosters)
            .with_context(|| format!("loading model {version} from {}", self.dir.display()))?;
        tracing::info!(
            version,
            features = model.names.len(),
            recommend_sessions = model.recommend.len(),
            "model loaded"
        );
        metrics::counter!("ecom_model_reloads_total", "role" => self.role()).increment(1);
        if let Some(old) = self.version() {
            metrics::gauge!("ecom_model_loaded", "version" => old, "role" => self.role()).set(0.0);
        }
        metrics::gauge!("ecom_model_loaded", "version" => version.to_string(), "role" => self.role()).set(1.0);
        self.current.store(Some(Arc::new(model)));
        Ok(())
    }

    fn role(&self) -> &'static str {
        if self.pointer == ecom_model::SHADOW {
            "shadow"
        } else {
            "serving"
        }
    }

    /// Loads the version CURRENT names if it is neither loaded nor the one that last failed;
    /// returns it. A failed load is counted (`ecom_model_reload_errors_total`) and remembered,
    /// and the previous model keeps serving. Blocking; one caller at a time.
    pub fn refresh(&self) -> anyhow::Result<Option<String>> {
        let Some(want) = self.wanted() else {
            return Ok(None);
        };
        let loaded = self.load(&want);
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        match loaded {
            Ok(()) => {
                *failed = None;
                Ok(Some(want))
            }
            Err(e) => {
                metrics::counter!("ecom_model_reload_errors_total").increment(1);
                *failed = Some((want, format!("{e:#}")));
                Err(e)
            }
        }
    }

    /// Polls CURRENT every `every` until the process ends; a failed load is logged (and, by
    /// [`ModelStore::refresh`], counted and retried only when CURRENT moves again).
    pub async fn watch(self: Arc<Self>, every: Duration) {
        loop {
            if self.pointer == ecom_model::SHADOW && ecom_model::pointed(&self.dir, self.pointer).is_none() {
                if let Some(old) = self.version() {
                    tracing::info!(version = old, "shadow scoring stopped (no models/SHADOW)");
                    metrics::gauge!("ecom_model_loaded", "version" => old, "role" => "shadow").set(0.0);
                    self.current.store(None);
                }
            }
            if self.wanted().is_some() {
                let store = self.clone();
                match tokio::task::spawn_blocking(move || store.refresh()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(
                        error = format!("{e:#}"),
                        "model reload failed; the previous model keeps serving"
                    ),
                    Err(e) => tracing::error!(error = %e, "model reload task panicked"),
                }
            }
            tokio::time::sleep(every).await;
        }
    }
}
