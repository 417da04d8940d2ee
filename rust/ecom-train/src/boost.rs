//! XGBoost through the real library (the `xgb` crate, which builds XGBoost 3.4 from the source
//! it ships): gradient boosting with early stopping on the validation set, XGBoost's own
//! random-forest mode, and TreeSHAP contributions.
use anyhow::{anyhow, Context};
use xgb::parameters::{learning, tree, BoosterParametersBuilder, BoosterType};
use xgb::{Booster, DMatrix};

/// How a booster is trained.
#[derive(Debug, Clone, Copy)]
pub struct BoostConfig {
    /// Seed of XGBoost's sampling.
    pub seed: u64,
    /// XGBoost threads.
    pub threads: u32,
    /// Most boosting rounds.
    pub max_rounds: u32,
    /// Stop after this many rounds without a better validation log loss.
    pub patience: u32,
    /// The prediction before any tree: the training purchase rate. (The xgb crate always sends
    /// a base score, 0.5 unless told, which turns off XGBoost's own estimate; from 0.5 one
    /// forest round cannot reach rates near 2 %.)
    pub base_score: f32,
}

/// What training a booster found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BoostInfo {
    /// Rounds kept (best validation round + 1); 1 for the forest.
    pub rounds: u32,
    /// Trees in the model.
    pub trees: u32,
    /// Validation log loss at the kept round.
    pub valid_logloss: Option<f32>,
}

fn xgb_err(what: &str) -> impl FnOnce(xgb::XGBError) -> anyhow::Error + '_ {
    move |e| anyhow!("xgboost {what}: {e}")
}

/// A DMatrix of row-major features with labels.
pub fn matrix(x: &[f32], rows: usize, labels: Option<&[bool]>) -> anyhow::Result<DMatrix> {
    let mut m = DMatrix::from_dense(x, rows).map_err(xgb_err("building a DMatrix"))?;
    if let Some(y) = labels {
        let y: Vec<f32> = y.iter().map(|b| f32::from(u8::from(*b))).collect();
        m.set_labels(&y).map_err(xgb_err("setting labels"))?;
    }
    Ok(m)
}

fn learning_params(
    cfg: &BoostConfig,
    objective: learning::Objective,
) -> anyhow::Result<learning::LearningTaskParameters> {
    let metric = match objective {
        learning::Objective::BinaryLogistic => learning::EvaluationMetric::LogLoss,
        _ => learning::EvaluationMetric::RMSE,
    };
    learning::LearningTaskParametersBuilder::default()
        .objective(objective)
        .eval_metrics(learning::Metrics::Custom(vec![metric]))
        .seed(cfg.seed)
        .base_score(cfg.base_score)
        .build()
        .map_err(|e| anyhow!("xgboost learning parameters: {e}"))
}

fn booster(
    tree: tree::TreeBoosterParameters,
    objective: learning::Objective,
    cfg: &BoostConfig,
    cached: &[&DMatrix],
) -> anyhow::Result<Booster> {
    let params = BoosterParametersBuilder::default()
        .booster_type(BoosterType::Tree(tree))
        .learning_params(learning_params(cfg, objective)?)
        .threads(Some(cfg.threads))
        .verbose(false)
        .build()
        .map_err(|e| anyhow!("xgboost parameters: {e}"))?;
    Booster::new_with_cached_dmats(&params, cached).map_err(xgb_err("creating a booster"))
}

/// Gradient-boosted trees with early stopping on the validation log loss.
pub fn train_gbdt(
    train: &DMatrix,
    valid: &DMatrix,
    cfg: &BoostConfig,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<(Booster, BoostInfo)> {
    let tp = tree::TreeBoosterParametersBuilder::default()
        .max_depth(5)
        .eta(0.05)
        .min_child_weight(2.0)
        .subsample(0.9)
        .colsample_bytree(0.9)
        .tree_method(tree::TreeMethod::Hist)
        .build()
        .map_err(|e| anyhow!("xgboost tree parameters: {e}"))?;
    let mut bst = booster(tp, learning::Objective::BinaryLogistic, cfg, &[train, valid])?;
    let (mut best, mut best_round) = (f32::INFINITY, 0u32);
    for round in 0..cfg.max_rounds {
        bst.update(train, round as i32).map_err(xgb_err("boosting a round"))?;
        let ll = *bst
            .evaluate(valid)
            .map_err(xgb_err("evaluating"))?
            .get("logloss")
            .context("xgboost evaluation without logloss")?;
        bar.inc(1);
        if ll < best {
            (best, best_round) = (ll, round);
        } else if round - best_round >= cfg.patience {
            break;
        }
    }
    let bst = bst.slice(0, best_round as i32 + 1).map_err(xgb_err("keeping the best rounds"))?;
    let rounds = best_round + 1;
    Ok((bst, BoostInfo { rounds, trees: rounds, valid_logloss: Some(best) }))
}

/// XGBoost's random-forest mode: one round of many parallel trees, each on a row subsample and
/// feature subsamples per node, learning rate 1 (no boosting). Squared error on the 0/1 label,
/// so a leaf holds the purchase rate of its rows and the forest averages them: the classic
/// random-forest probability. (With the logistic objective the one round is a single Newton
/// step from the base score, which overshoots: probabilities near 0 and 1, a log loss no better
/// than the baseline's.)
pub fn train_forest(train: &DMatrix, cfg: &BoostConfig, trees: u32) -> anyhow::Result<(Booster, BoostInfo)> {
    let tp = tree::TreeBoosterParametersBuilder::default()
        .max_depth(10)
        .eta(1.0)
        .subsample(0.632)
        .colsample_bynode(0.3)
        .min_child_weight(2.0)
        .num_parallel_tree(trees)
        .tree_method(tree::TreeMethod::Hist)
        .build()
        .map_err(|e| anyhow!("xgboost forest parameters: {e}"))?;
    let mut bst = booster(tp, learning::Objective::RegLinear, cfg, &[train])?;
    bst.update(train, 0).map_err(xgb_err("growing the forest"))?;
    Ok((bst, BoostInfo { rounds: 1, trees, valid_logloss: None }))
}

/// Probabilities for a matrix (a forest's averaged leaf rates stay in [0, 1]; clamped against
/// rounding).
pub fn predict(bst: &Booster, m: &DMatrix) -> anyhow::Result<Vec<f64>> {
    Ok(bst.predict(m).map_err(xgb_err("predicting"))?.into_iter().map(|p| f64::from(p).clamp(0.0, 1.0)).collect())
}

/// TreeSHAP contributions: per row, one value per feature and the bias last; they sum to the
/// row's margin (log-odds).
pub fn contributions(bst: &Booster, m: &DMatrix) -> anyhow::Result<Vec<f32>> {
    Ok(bst.predict_contributions(m).map_err(xgb_err("computing SHAP contributions"))?.0)
}

/// Saves the model as XGBoost JSON (readable by every XGBoost binding, Python included).
pub fn save(bst: &Booster, path: &std::path::Path) -> anyhow::Result<()> {
    bst.save(path).map_err(|e| anyhow!("saving {}: {e}", path.display()))
}

/// Loads a saved model.
pub fn load(path: &std::path::Path) -> anyhow::Result<Booster> {
    Booster::load(path).map_err(|e| anyhow!("loading {}: {e}", path.display()))
}
