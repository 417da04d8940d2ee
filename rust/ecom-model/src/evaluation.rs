//! metrics.json: a version's offline evaluation on its test set (users never seen in training,
//! sessions after the time cut), written by `ecom train` and read by its report, the dashboard
//! and whoever compares versions. Scores that cannot be computed (one class only) are null.
use ecom_core::lsh::LshParams;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The version's name (its directory).
    pub version: String,
    /// When training finished, ms since the epoch.
    pub created_at_ms: i64,
    /// Where the sessions came from (a directory, or MongoDB's database).
    pub source: String,
    /// What loading the sessions found (counts, for display).
    pub load: Value,
    /// The split's rule and sizes.
    pub split: Split,
    /// The features the models read.
    pub feature_schema: FeatureSchema,
    /// The MinHash LSH of the neighbour features.
    #[serde(with = "crate::LshParamsDef")]
    pub lsh: LshParams,
    /// The generator's own probability, scored as a model: the ceiling.
    pub oracle_auc: Option<f64>,
    /// [`Scores`] of the oracle.
    pub oracle: Scores,
    /// The oracle with what no model could know integrated out: the honest ceiling.
    pub observable_oracle_auc: Option<f64>,
    /// [`Scores`] of the observable oracle.
    pub observable_oracle: Scores,
    /// The oracle with the persona and the history before the data inferred as well, from
    /// everything a model could see: the tightest honest ceiling. Absent in older versions.
    #[serde(default)]
    pub inferable_oracle_auc: Option<f64>,
    /// [`Scores`] of the inferable oracle.
    #[serde(default)]
    pub inferable_oracle: Scores,
    /// The trivial model: the training purchase rate for everyone.
    pub baseline: Baseline,
    /// Every trained model by name (`xgboost` serves; `random_forest`, `mlp`).
    pub models: BTreeMap<String, ModelScores>,
    /// XGBoost's TreeSHAP over the test rows.
    pub shap: Shap,
    /// Training's seed.
    pub seed: u64,
    /// Wall time of the whole training.
    pub train_seconds_total: f64,
}

/// The split: rule and sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// How sessions were assigned (user shares, time cut).
    pub rule: Value,
    /// Training sessions.
    pub train: Count,
    /// Validation sessions (early stopping).
    pub valid: Count,
    /// Test sessions: every score here is over them.
    pub test: Count,
}

/// Sessions and purchases among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// Sessions.
    pub sessions: u64,
    /// Sessions that purchased.
    pub purchases: u64,
}

/// The feature schema, as schema.json has it plus ecom-core's version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSchema {
    /// ecom-core's feature schema hash.
    pub core_hash: String,
    /// ecom-core's feature schema version.
    pub core_version: u32,
    /// The model's schema hash ([`crate::schema_hash`]).
    pub hash: String,
    /// Feature names in column order.
    pub names: Vec<String>,
}

/// A set of probabilities scored against the test outcomes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// ROC AUC.
    pub roc_auc: Option<f64>,
    /// Precision-recall AUC.
    pub pr_auc: Option<f64>,
    /// Mean log loss.
    pub log_loss: Option<f64>,
    /// Brier score.
    pub brier: Option<f64>,
    /// Reliability: 10 equal-width bins of the predicted probability.
    pub calibration: Vec<CalibrationBin>,
}

impl Scores {
    /// Scores `probs` against `labels`.
    pub fn of(probs: &[f64], labels: &[bool]) -> Self {
        use ecom_core::metrics as m;
        Self {
            roc_auc: m::roc_auc(probs, labels),
            pr_auc: m::pr_auc(probs, labels),
            log_loss: m::log_loss(probs, labels),
            brier: m::brier(probs, labels),
            calibration: m::reliability(probs, labels, 10)
                .into_iter()
                .map(|b| CalibrationBin {
                    lo: b.lo,
                    hi: b.hi,
                    count: b.count as u64,
                    mean_predicted: b.mean_predicted,
                    observed_rate: b.observed_rate,
                })
                .collect(),
        }
    }
}

/// One reliability bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// Lower edge of the predicted probability.
    pub lo: f64,
    /// Upper edge.
    pub hi: f64,
    /// Test sessions in the bin.
    pub count: u64,
    /// Their mean predicted probability.
    pub mean_predicted: f64,
    /// Their observed purchase rate.
    pub observed_rate: f64,
}

/// A trained model's scores and costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelScores {
    /// Its [`Scores`] on the test set.
    #[serde(flatten)]
    pub scores: Scores,
    /// Training time.
    pub train_seconds: f64,
    /// Prediction time per test row.
    pub inference_us_per_row: f64,
    /// What its trainer reports (rounds, early stopping, epochs).
    pub info: Value,
    /// Its file in the version directory.
    pub file: String,
}

/// The trivial model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// What it predicts.
    pub what: String,
    /// The rate it predicts for everyone.
    pub rate: f64,
    /// Its [`Scores`].
    pub metrics: Scores,
}

/// XGBoost's TreeSHAP summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shap {
    /// The model explained.
    pub model: String,
    /// Test rows explained.
    pub rows: u64,
    /// Largest difference between a row's contributions and its margin.
    pub additivity_max_abs_error: f64,
    /// The first row's bias term.
    pub bias: Option<f64>,
    /// Features by mean |SHAP|, largest first.
    pub mean_abs: Vec<FeatureShap>,
}

/// One feature's mean |SHAP|.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureShap {
    /// The feature.
    pub feature: String,
    /// Its mean absolute contribution to the log-odds.
    pub mean_abs_shap: f64,
}
