//! `ecom train`: honest offline models of purchase intent. Sessions come from the generator's
//! files, features from ecom-core (the functions the live job calls over JNI), the split is by
//! user and by time, and every model is judged on held-out users' later sessions next to the
//! generator's oracle and a trivial baseline. Writes `models/<version>/` and moves the
//! `models/CURRENT` pointer that `ecom serve` watches.
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]

pub mod ablation;
pub mod boost;
pub mod data;
pub mod mlp;
pub mod prepare;
pub mod svg;

use anyhow::{bail, Context};
use ecom_core::lsh::LshParams;
use ecom_core::metrics;
use ecom_core::now_ms;
use prepare::{Split, Table};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Sessions to train on, as a loader produced them.
#[derive(Debug, Clone)]
pub struct Input {
    /// Where they came from, for the report (`/tmp/shop`, `mongodb://…/ecom.events`).
    pub source: String,
    /// The sessions, sorted by start.
    pub sessions: Vec<data::Session>,
    /// What loading found.
    pub stats: data::LoadStats,
}

impl Input {
    /// Sessions from a directory written by `ecom generate --out DIR`.
    pub fn from_dir(dir: &Path, progress: bool) -> anyhow::Result<Self> {
        eprintln!("ecom train: reading sessions from {}", dir.display());
        let (sessions, stats) = data::load_dir(dir, progress)?;
        Ok(Self { source: dir.display().to_string(), sessions, stats })
    }

    /// Sessions straight from the generator ([`data::load_generated`]).
    pub fn from_generator(cfg: ecom_gen::GenConfig, progress: bool) -> anyhow::Result<Self> {
        let source = format!("ecom generate --events {} --seed {} (not written)", cfg.events, cfg.seed);
        eprintln!("ecom train: sessions from {source}");
        let (sessions, stats) = data::load_generated(cfg, progress)?;
        Ok(Self { source, sessions, stats })
    }
}

/// Everything `ecom train` can be told.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Root of the model versions (`models/`).
    pub models_dir: PathBuf,
    /// Seed of every model.
    pub seed: u64,
    /// Threads for XGBoost.
    pub threads: u32,
    /// LSH parameters of the neighbour features (the job's `--lsh-perm/--lsh-bands`).
    pub lsh: LshParams,
    /// Trees in the random forest.
    pub forest_trees: u32,
    /// Most MLP epochs.
    pub mlp_epochs: usize,
    /// Progress bars on stderr.
    pub progress: bool,
    /// Version name; default: `v<unix seconds>`.
    pub version: Option<String>,
    /// Where to write the feature table as CSV ([`prepare::write_csv`]), if anywhere.
    pub rows_out: Option<PathBuf>,
}

/// What `train` produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The version directory.
    pub dir: PathBuf,
    /// metrics.json as written.
    pub metrics: Evaluation,
}

use ecom_model::evaluation::{Baseline, Count, FeatureSchema, FeatureShap, ModelScores, Scores, Shap};
use ecom_model::{schema_hash, Evaluation};

/// The served booster's settings, starting from the training purchase rate.
fn boost_config(opts: &TrainOptions, ytr: &[bool]) -> boost::BoostConfig {
    let rate = ytr.iter().filter(|y| **y).count() as f64 / ytr.len().max(1) as f64;
    boost::BoostConfig {
        seed: opts.seed,
        threads: opts.threads,
        max_rounds: 2000,
        patience: 30,
        base_score: rate.clamp(1e-3, 1.0 - 1e-3) as f32,
    }
}

fn subset<T: Clone>(v: &[T], rows: &[usize]) -> Vec<T> {
    rows.iter().map(|&r| v[r].clone()).collect()
}

/// Trains every model and writes the version directory.
pub fn train(input: Input, opts: &TrainOptions) -> anyhow::Result<TrainOutcome> {
    let started = Instant::now();
    let Input { source, sessions, stats: load } = input;
    let rule = prepare::SplitRule::for_sessions(&sessions);
    let (table, index, recommend) = prepare::build(&sessions, opts.lsh, &rule)?;
    drop(sessions);
    if let Some(path) = &opts.rows_out {
        prepare::write_csv(&table, path)?;
    }
    let (tr, va, te) = (table.rows_of(Split::Train), table.rows_of(Split::Valid), table.rows_of(Split::Test));
    check_split(&table, &tr, &va, &te)?;
    let c = table.cols();
    let (xtr, xva, xte) = (table.x_of(&tr), table.x_of(&va), table.x_of(&te));
    let (ytr, yva, yte) = (subset(&table.y, &tr), subset(&table.y, &va), subset(&table.y, &te));
    eprintln!(
        "ecom train: {} sessions ({} eligible); train {} / valid {} / test {} (users split 60/20/20, time cut at the median start)",
        load.sessions,
        load.eligible,
        tr.len(),
        va.len(),
        te.len()
    );

    let version = opts.version.clone().unwrap_or_else(default_version);
    let out = opts.models_dir.join(&version);
    if out.exists() {
        bail!("{} already exists: choose another --version", out.display());
    }
    let tmp = opts.models_dir.join(format!(".{version}.partial"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;

    let rate = ytr.iter().filter(|y| **y).count() as f64 / ytr.len().max(1) as f64;
    let cfg = boost_config(opts, &ytr);
    let (dtr, dva, dte) = (
        boost::matrix(&xtr, tr.len(), Some(&ytr))?,
        boost::matrix(&xva, va.len(), Some(&yva))?,
        boost::matrix(&xte, te.len(), None)?,
    );
    let mut models = std::collections::BTreeMap::new();
    let mut curves: Vec<(&str, &str, Vec<f64>)> = Vec::new();

    // XGBoost, boosted.
    let bar = data::bar(opts.progress, u64::from(cfg.max_rounds), "xgboost rounds");
    let t = Instant::now();
    let (gbdt, info) = boost::train_gbdt(&dtr, &dva, &cfg, &bar)?;
    let train_s = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let p = publish_booster(&gbdt, &dte, &yte, &tmp, "xgboost", train_s, json!(info), &mut models)?;
    curves.push(("xgboost", "#1f77b4", p));

    // XGBoost's random-forest mode.
    eprintln!("ecom train: random forest ({} trees)", opts.forest_trees);
    let t = Instant::now();
    let (forest, info) = boost::train_forest(&dtr, &cfg, opts.forest_trees)?;
    let train_s = t.elapsed().as_secs_f64();
    let p = publish_booster(&forest, &dte, &yte, &tmp, "random_forest", train_s, json!(info), &mut models)?;
    curves.push(("random forest", "#2ca02c", p));

    // The MLP.
    let mcfg =
        mlp::MlpConfig { seed: opts.seed, max_epochs: opts.mlp_epochs, patience: 5, batch: 256, learning_rate: 1e-3 };
    let bar = data::bar(opts.progress, opts.mlp_epochs as u64, "mlp epochs");
    let t = Instant::now();
    let (net, info) = mlp::Mlp::train(&xtr, &ytr, &xva, &yva, c, &mcfg, &bar)?;
    let train_s = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let t = Instant::now();
    let p = net.predict(&xte)?;
    let infer = t.elapsed().as_secs_f64() * 1e6 / te.len().max(1) as f64;
    net.save(&tmp, "mlp")?;
    models.insert("mlp".into(), model_entry(&p, &yte, train_s, infer, json!(info), "mlp.safetensors"));
    curves.push(("mlp", "#9467bd", p));

    // The oracle and the trivial baseline on the same test rows.
    let oracle = subset(&table.oracle, &te);
    let observable = subset(&table.observable, &te);
    let inferable = subset(&table.inferable, &te);
    let baseline = vec![rate; te.len()];

    // SHAP from XGBoost's TreeSHAP on the test rows.
    let contribs = boost::contributions(&gbdt, &dte)?;
    let shap = shap_summary(&contribs, &xte, &table.names, &curves[0].2)?;

    let count = |y: &[bool]| Count { sessions: y.len() as u64, purchases: y.iter().filter(|y| **y).count() as u64 };
    let metrics = Evaluation {
        version: version.clone(),
        created_at_ms: now_ms(),
        source,
        load: serde_json::to_value(&load)?,
        split: ecom_model::evaluation::Split {
            rule: serde_json::to_value(rule)?,
            train: count(&ytr),
            valid: count(&yva),
            test: count(&yte),
        },
        feature_schema: FeatureSchema {
            core_hash: ecom_core::features::schema_hash(),
            core_version: ecom_core::features::SCHEMA_VERSION,
            hash: schema_hash(&table.names),
            names: table.names.clone(),
        },
        lsh: opts.lsh,
        oracle_auc: metrics::roc_auc(&oracle, &yte),
        oracle: Scores::of(&oracle, &yte),
        observable_oracle_auc: metrics::roc_auc(&observable, &yte),
        observable_oracle: Scores::of(&observable, &yte),
        inferable_oracle_auc: metrics::roc_auc(&inferable, &yte),
        inferable_oracle: Scores::of(&inferable, &yte),
        baseline: Baseline {
            what: "the training purchase rate for everyone".into(),
            rate,
            metrics: Scores::of(&baseline, &yte),
        },
        models,
        shap,
        seed: opts.seed,
        train_seconds_total: started.elapsed().as_secs_f64(),
    };
    ecom_model::write_json(&tmp, ecom_model::METRICS_FILE, &metrics, true)?;
    ecom_model::write_json(
        &tmp,
        ecom_model::SCHEMA_FILE,
        &ecom_model::Schema::new(table.names.clone(), opts.lsh),
        true,
    )?;
    ecom_model::write_json(
        &tmp,
        ecom_model::REFERENCE_FILE,
        &drift_reference(&xtr, &table.names, &metrics.shap),
        true,
    )?;
    ecom_model::write_json(&tmp, ecom_model::NEIGHBOURS_FILE, &index, false)?;
    ecom_model::write_json(&tmp, ecom_model::RECOMMEND_FILE, &recommend, false)?;
    let references = [
        ("oracle", "#d62728", oracle.as_slice()),
        ("observable oracle", "#e377c2", &observable),
        ("inferable oracle", "#bcbd22", &inferable),
        ("baseline", "#7f7f7f", &baseline),
    ];
    report(&tmp, &metrics, &curves, &references, &yte, &contribs, &xte, &table.names)?;

    // Publish: the finished directory appears at once, then CURRENT moves to it.
    std::fs::rename(&tmp, &out).with_context(|| format!("moving {} to {}", tmp.display(), out.display()))?;
    ecom_model::versions::promote(&opts.models_dir, &version, "train")?;
    Ok(TrainOutcome { dir: out, metrics })
}

/// Predicts the test rows (timed), saves `<name>.json` and records the model's metrics.
#[allow(clippy::too_many_arguments)] // the pieces of one model's entry
fn publish_booster(
    bst: &xgb::Booster,
    test: &xgb::DMatrix,
    y: &[bool],
    dir: &Path,
    name: &str,
    train_s: f64,
    info: Value,
    models: &mut std::collections::BTreeMap<String, ModelScores>,
) -> anyhow::Result<Vec<f64>> {
    let t = Instant::now();
    let p = boost::predict(bst, test)?;
    let infer = t.elapsed().as_secs_f64() * 1e6 / y.len().max(1) as f64;
    let file = format!("{name}.json");
    boost::save(bst, &dir.join(&file))?;
    models.insert(name.into(), model_entry(&p, y, train_s, infer, info, &file));
    Ok(p)
}

fn model_entry(p: &[f64], y: &[bool], train_s: f64, infer_us: f64, info: Value, file: &str) -> ModelScores {
    ModelScores {
        scores: Scores::of(p, y),
        train_seconds: train_s,
        inference_us_per_row: infer_us,
        info,
        file: file.into(),
    }
}

/// No user and no session may be in two splits.
fn check_split(table: &Table, tr: &[usize], va: &[usize], te: &[usize]) -> anyhow::Result<()> {
    if tr.is_empty() || va.is_empty() || te.is_empty() {
        bail!(
            "too little data to split: train {}, valid {}, test {} sessions (generate more events)",
            tr.len(),
            va.len(),
            te.len()
        );
    }
    let users = |rows: &[usize]| rows.iter().map(|&r| table.user_id[r].as_str()).collect::<HashSet<_>>();
    let (a, b, c) = (users(tr), users(va), users(te));
    if !a.is_disjoint(&b) || !a.is_disjoint(&c) || !b.is_disjoint(&c) {
        bail!("internal error: a user crosses splits");
    }
    for (name, rows) in [("train", tr), ("valid", va), ("test", te)] {
        let y: HashSet<bool> = rows.iter().map(|&r| table.y[r]).collect();
        if y.len() < 2 {
            bail!("the {name} split has only one outcome ({} sessions): generate more events", rows.len());
        }
    }
    Ok(())
}

/// Global mean |SHAP| per feature, the additivity check, and the top features.
/// The training rows' bins of the most important ecom-core features (by mean |SHAP|): what the
/// dashboard measures live feature drift against. Neighbour features are left out: the job's
/// sessions carry ecom-core's only.
fn drift_reference(x: &[f32], names: &[String], shap: &Shap) -> ecom_model::drift::Reference {
    use ecom_model::drift::{FeatureReference, Reference, TOP_FEATURES};
    let c = names.len().max(1);
    let rows = x.len() / c;
    let features = shap
        .mean_abs
        .iter()
        .filter(|f| ecom_core::features::NAMES.contains(&f.feature.as_str()))
        .filter_map(|f| {
            let k = names.iter().position(|n| *n == f.feature)?;
            let column: Vec<f64> = (0..rows).map(|r| f64::from(x[r * c + k])).collect();
            Some(FeatureReference::of(&f.feature, &column))
        })
        .take(TOP_FEATURES)
        .collect();
    Reference { rows: rows as u64, features }
}

fn shap_summary(contribs: &[f32], x: &[f32], names: &[String], probs: &[f64]) -> anyhow::Result<Shap> {
    let c = names.len();
    let rows = x.len() / c.max(1);
    if contribs.len() != rows * (c + 1) {
        bail!("xgboost returned {} contributions for {rows} rows × {} columns", contribs.len(), c + 1);
    }
    let mut mean_abs = vec![0f64; c];
    let mut max_err = 0f64;
    for (r, row) in contribs.chunks(c + 1).enumerate() {
        for (k, v) in row[..c].iter().enumerate() {
            mean_abs[k] += f64::from(v.abs()) / rows as f64;
        }
        let sum: f64 = row.iter().map(|v| f64::from(*v)).sum();
        let p = probs[r].clamp(1e-7, 1.0 - 1e-7);
        max_err = max_err.max((sum - (p / (1.0 - p)).ln()).abs());
    }
    let mut order: Vec<usize> = (0..c).collect();
    order.sort_by(|a, b| mean_abs[*b].total_cmp(&mean_abs[*a]));
    Ok(Shap {
        model: "xgboost".into(),
        rows: rows as u64,
        additivity_max_abs_error: max_err,
        bias: contribs.get(c).map(|&b| f64::from(b)),
        mean_abs: order
            .iter()
            .map(|&k| FeatureShap { feature: names[k].clone(), mean_abs_shap: mean_abs[k] })
            .collect(),
    })
}

/// Probabilities to the points of a curve.
type CurveFn<'a> = dyn Fn(&[f64]) -> Vec<(f64, f64)> + 'a;

#[allow(clippy::too_many_arguments)] // one report from everything training computed
fn report(
    dir: &Path,
    metrics: &Evaluation,
    curves: &[(&str, &str, Vec<f64>)],
    references: &[(&str, &str, &[f64])],
    y: &[bool],
    contribs: &[f32],
    x: &[f32],
    names: &[String],
) -> anyhow::Result<()> {
    use svg::Series;
    let mut all: Vec<(&str, &str, &[f64])> = curves.iter().map(|(n, c, p)| (*n, *c, p.as_slice())).collect();
    all.extend_from_slice(references);
    let series = |f: &CurveFn<'_>| -> Vec<Series<'_>> {
        all.iter().map(|(n, c, p)| Series { name: n, color: c, points: thin(f(p)), scatter: false }).collect()
    };
    let roc = svg::plot(
        "ROC (test users, later sessions)",
        "false positive rate",
        "true positive rate",
        (0.0, 1.0),
        (0.0, 1.0),
        &series(&|p| metrics::roc_curve(p, y)),
    );
    let pr = svg::plot(
        "Precision-recall",
        "recall",
        "precision",
        (0.0, 1.0),
        (0.0, 1.0),
        &series(&|p| metrics::pr_curve(p, y)),
    );
    let mut cal =
        series(&|p| metrics::reliability(p, y, 10).iter().map(|b| (b.mean_predicted, b.observed_rate)).collect());
    cal.push(Series { name: "perfect", color: "#bbbbbb", points: vec![(0.0, 0.0), (1.0, 1.0)], scatter: false });
    let cal = svg::plot(
        "Calibration (10 bins)",
        "mean predicted probability",
        "observed purchase rate",
        (0.0, 1.0),
        (0.0, 1.0),
        &cal,
    );
    let top: Vec<(String, f64)> =
        metrics.shap.mean_abs.iter().take(20).map(|f| (f.feature.clone(), f.mean_abs_shap)).collect();
    let summary = svg::bars("XGBoost: mean |SHAP| per feature (top 20)", "mean |contribution| to the log-odds", &top);
    let mut files: Vec<(String, String)> =
        [("roc.svg", roc), ("pr.svg", pr), ("calibration.svg", cal), ("shap_summary.svg", summary)]
            .into_iter()
            .map(|(n, body)| (n.to_string(), body))
            .collect();
    let c = names.len();
    for (feature, _) in top.iter().take(3) {
        let Some(k) = names.iter().position(|n| n == feature) else { continue };
        let pts: Vec<(f64, f64)> = x
            .chunks(c)
            .zip(contribs.chunks(c + 1))
            .take(3000)
            .map(|(row, con)| (f64::from(row[k]), f64::from(con[k])))
            .collect();
        let (x0, x1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (v, _)| (a.min(*v), b.max(*v)));
        let (y0, y1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, v)| (a.min(*v), b.max(*v)));
        let plot = svg::plot(
            &format!("SHAP dependence: {feature}"),
            feature,
            "SHAP value",
            (x0, x1.max(x0 + 1e-9)),
            (y0, y1.max(y0 + 1e-9)),
            &[Series { name: feature, color: "#1f77b4", points: pts, scatter: true }],
        );
        files.push((format!("shap_dependence_{feature}.svg"), plot));
    }
    for (name, body) in &files {
        std::fs::write(dir.join(name), body)?;
    }
    let mut rows = String::new();
    for r in table_rows(metrics) {
        let (name, timing) = match r.timing {
            Some((train_s, us)) => (r.label.to_string(), format!("<td>{train_s:.1}</td><td>{us:.2}</td>")),
            None => (format!("<i>{}</i>", r.label), "<td></td><td></td>".to_string()),
        };
        let cells: String = r.cells.iter().map(|c| format!("<td>{c}</td>")).collect();
        rows += &format!("<tr><td>{name}</td>{cells}{timing}</tr>\n");
    }
    let imgs: String = files.iter().map(|(n, _)| format!("<img src=\"{n}\" alt=\"{n}\">\n")).collect();
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>ecom model {v}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{padding:4px 10px;text-align:right}}td:first-child{{text-align:left}}img{{margin:6px;border:1px solid #ddd}}</style></head><body>
<h1>ecom purchase model {v}</h1>
<p>Test set: sessions of users never seen in training (20 % of users by hash), starting after the time cut; {te} sessions, {tp} purchases. Training: other users' earlier sessions. Features over each session's decision prefix (schema {h}).</p>
<table><tr><th>model</th><th>ROC AUC</th><th>PR AUC</th><th>log loss</th><th>Brier</th><th>train s</th><th>µs/row</th></tr>
{rows}</table>
<p>SHAP additivity: contributions sum to the margin within {err:.2e} (max over test rows).</p>
{imgs}
<pre>{json}</pre></body></html>\n",
        v = metrics.version,
        te = metrics.split.test.sessions,
        tp = metrics.split.test.purchases,
        h = metrics.feature_schema.hash,
        err = metrics.shap.additivity_max_abs_error,
        json = serde_json::to_string_pretty(&metrics.split)?.replace('<', "&lt;"),
    );
    std::fs::write(dir.join("report.html"), html)?;
    Ok(())
}

/// At most ~400 points per curve, keeping the ends.
fn thin(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let step = points.len().div_ceil(400).max(1);
    let last = points.last().copied();
    let mut out: Vec<(f64, f64)> = points.into_iter().step_by(step).collect();
    if let Some(l) = last {
        if out.last() != Some(&l) {
            out.push(l);
        }
    }
    out
}

fn default_version() -> String {
    format!("v{}", now_ms() / 1000)
}

/// One row of the results table (report and summary): the models, then the references.
struct TableRow<'a> {
    /// Short name (the summary).
    name: &'a str,
    /// Longer label (the report).
    label: &'a str,
    /// ROC AUC, PR AUC, log loss, Brier, formatted.
    cells: [String; 4],
    /// Training seconds and inference µs per row; references have none.
    timing: Option<(f64, f64)>,
}

fn table_rows(m: &Evaluation) -> Vec<TableRow<'_>> {
    let cells = |v: &Scores| {
        [v.roc_auc, v.pr_auc, v.log_loss, v.brier].map(|x| x.map_or_else(|| "n/a".into(), |x| format!("{x:.4}")))
    };
    let mut rows: Vec<TableRow<'_>> = m
        .models
        .iter()
        .map(|(name, v)| TableRow {
            name,
            label: name,
            cells: cells(&v.scores),
            timing: Some((v.train_seconds, v.inference_us_per_row)),
        })
        .collect();
    for (name, label, v) in [
        ("oracle", "oracle (generator's probability)", &m.oracle),
        ("observable oracle", "observable oracle (hidden intent integrated out)", &m.observable_oracle),
        ("inferable oracle", "inferable oracle (persona and history inferred too)", &m.inferable_oracle),
        ("baseline", "baseline (training rate)", &m.baseline.metrics),
    ] {
        rows.push(TableRow { name, label, cells: cells(v), timing: None });
    }
    rows
}

/// The closing summary `ecom train` prints: one line per model next to the oracle and baseline.
pub fn summary(out: &TrainOutcome) -> String {
    let m = &out.metrics;
    let mut s = format!(
        "model {} written to {}\n  test: {} sessions of unseen users after the time cut, {} purchases\n",
        m.version,
        out.dir.display(),
        m.split.test.sessions,
        m.split.test.purchases
    );
    s += &format!("  {:<17} {:>8} {:>8} {:>9} {:>8} {:>9}\n", "", "ROC AUC", "PR AUC", "log loss", "Brier", "train s");
    for r in table_rows(m) {
        let [roc, pr, ll, brier] = &r.cells;
        let train_s = r.timing.map(|(t, _)| format!("{t:>9.1}")).unwrap_or_default();
        s += format!("  {:<17} {roc:>8} {pr:>8} {ll:>9} {brier:>8} {train_s}", r.name).trim_end();
        s.push('\n');
    }
    s += &format!("  report: {}\n", out.dir.join("report.html").display());
    s
}
