//! Our TreeSHAP (XGBoost 3.4 through the `xgb` crate) against Python's on the same saved model:
//! Python XGBoost's own `pred_contribs` and the independent `shap.TreeExplainer`. Needs the
//! venv dev/install makes (`ECOM_CHECK_PYTHON`); `dev/test` runs it.
use ecom_core::lsh::DEFAULT_PARAMS;
use ecom_train::{boost, data, prepare};
use std::path::Path;

mod common;

#[test]
#[ignore = "needs Python xgboost and shap: run dev/install, then cargo test -- --ignored (dev/test does)"]
fn tree_shap_matches_python_xgboost_and_shap_on_the_saved_model() {
    let python = std::env::var("ECOM_CHECK_PYTHON")
        .expect("ECOM_CHECK_PYTHON is not set: source dev/env.sh (dev/install makes the venv with xgboost and shap)");
    assert!(Path::new(&python).exists(), "{python} does not exist: run dev/install");
    let dir = common::tmp("shap-python");
    common::generate(&dir, 60_000, 5);
    let (sessions, _) = data::load_dir(&dir, false).unwrap();
    let rule = prepare::SplitRule::for_sessions(&sessions);
    let (table, _, _) = prepare::build(&sessions, DEFAULT_PARAMS, &rule).unwrap();
    let rows = |s| table.rows_of(s);
    let (tr, va, te) = (rows(prepare::Split::Train), rows(prepare::Split::Valid), rows(prepare::Split::Test));
    let labels = |r: &[usize]| r.iter().map(|&i| table.y[i]).collect::<Vec<_>>();
    let cfg = boost::BoostConfig { seed: 1, threads: 1, max_rounds: 300, patience: 20, base_score: 0.07 };
    let dtr = boost::matrix(&table.x_of(&tr), tr.len(), Some(&labels(&tr))).unwrap();
    let dva = boost::matrix(&table.x_of(&va), va.len(), Some(&labels(&va))).unwrap();
    let (bst, _) = boost::train_gbdt(&dtr, &dva, &cfg, &indicatif::ProgressBar::hidden()).unwrap();
    let model = dir.join("xgboost.json");
    boost::save(&bst, &model).unwrap();

    // Our contributions from the model as loaded back from the file Python reads.
    let te = &te[..te.len().min(500)];
    let x = table.x_of(te);
    let loaded = boost::load(&model).unwrap();
    let ours = boost::contributions(&loaded, &boost::matrix(&x, te.len(), None).unwrap()).unwrap();
    let cols = table.cols();
    std::fs::write(dir.join("rows.json"), serde_json::to_vec(&serde_json::json!({"cols": cols, "x": x})).unwrap())
        .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/shap_check.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&model)
        .arg(dir.join("rows.json"))
        .arg(dir.join("python.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let py: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("python.json")).unwrap()).unwrap();
    let nums = |k: &str| -> Vec<f64> {
        py[k].as_array().unwrap_or_else(|| panic!("{k}")).iter().map(|v| v.as_f64().unwrap()).collect()
    };
    let (xgb_py, shap_py, margin) = (nums("xgboost_contribs"), nums("shap_values"), nums("margin"));
    let width = cols + 1;
    assert_eq!(ours.len(), te.len() * width);
    assert_eq!(xgb_py.len(), ours.len());
    assert_eq!(shap_py.len(), te.len() * cols, "shap gives one value per feature, the bias apart");
    let base = py["shap_expected_value"].as_f64().unwrap();
    let (mut worst_xgb, mut worst_shap) = (0.0f64, 0.0f64);
    for r in 0..te.len() {
        let row = &ours[r * width..(r + 1) * width];
        // Additivity on both sides: our contributions sum to Python's margin.
        let sum: f64 = row.iter().map(|v| f64::from(*v)).sum();
        assert!((sum - margin[r]).abs() < 1e-3, "row {r}: contributions sum {sum}, Python margin {}", margin[r]);
        for c in 0..width {
            worst_xgb = worst_xgb.max((f64::from(row[c]) - xgb_py[r * width + c]).abs());
        }
        for c in 0..cols {
            worst_shap = worst_shap.max((f64::from(row[c]) - shap_py[r * cols + c]).abs());
        }
        worst_shap = worst_shap.max((f64::from(row[cols]) - base).abs());
    }
    eprintln!(
        "python xgboost {} / shap {}: max |difference| {worst_xgb:.2e} (xgboost), {worst_shap:.2e} (shap), {} rows",
        py["xgboost_version"],
        py["shap_version"],
        te.len()
    );
    assert!(worst_xgb < 1e-4, "our TreeSHAP differs from Python XGBoost's by {worst_xgb}");
    assert!(worst_shap < 1e-3, "our TreeSHAP differs from shap.TreeExplainer's by {worst_shap}");
    let _ = std::fs::remove_dir_all(&dir);
}
