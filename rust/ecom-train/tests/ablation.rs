//! `ecom train --ablation` on generated data (no services): every variant is fitted on the same
//! test rows, and the candidate history-depth columns hold only sessions that ended before.
use ecom_core::lsh::DEFAULT_PARAMS;
use ecom_train::ablation::{self, DEPTH_NAMES, PRICE_NAMES, VARIANTS};
use ecom_train::{data, prepare, Input, TrainOptions};
use std::collections::HashMap;

#[test]
fn every_variant_is_fitted_on_the_same_rows_and_depth_is_from_the_past() {
    let cfg = ecom_gen::GenConfig { events: 150_000, seed: 4, malformed_rate: 0.0, ..Default::default() };
    let input = Input::from_generator(cfg, false).unwrap();
    let sessions = input.sessions.clone();

    // Depth: NaN until one of the user's sessions has ended, then the mean product views of
    // those that ended before this one starts.
    let all = prepare::build(&sessions, DEFAULT_PARAMS, &prepare::SplitRule::for_sessions(&sessions)).unwrap().0;
    let depth = ablation::history_depth(&sessions, &all);
    assert_eq!(depth.len(), sessions.len() * DEPTH_NAMES.len());
    let views = ecom_core::features::NAMES.iter().position(|n| *n == "product_views").unwrap();
    let mut earlier: HashMap<&str, Vec<&data::Session>> = HashMap::new();
    let mut with_history = 0;
    for (i, s) in sessions.iter().enumerate() {
        let ended: Vec<f64> = earlier
            .get(s.user_id.as_str())
            .into_iter()
            .flatten()
            .filter(|e| e.end_ms < s.start_ms)
            .map(|e| ecom_core::features::compute(&e.state, &Default::default())[views])
            .collect();
        let got = depth[i * DEPTH_NAMES.len()];
        if ended.is_empty() {
            assert!(got.is_nan(), "session {}: {got} without an ended earlier session", s.session_id);
        } else {
            with_history += 1;
            let want = ended.iter().sum::<f64>() / ended.len() as f64;
            assert!((f64::from(got) - want).abs() < 1e-4, "session {}: {got} vs {want}", s.session_id);
        }
        earlier.entry(s.user_id.as_str()).or_default().push(s);
    }
    assert!(with_history > 100, "only {with_history} sessions with history");

    let opts = TrainOptions {
        models_dir: std::env::temp_dir().join("ecom-ablation-unused"),
        seed: 7,
        threads: 1,
        lsh: DEFAULT_PARAMS,
        forest_trees: 10,
        mlp_epochs: 1,
        progress: false,
        version: None,
        rows_out: None,
    };
    let mut seen = 0;
    let found = ablation::ablate(input, &opts, |_| seen += 1).unwrap();
    assert_eq!((seen, found.rows.len()), (VARIANTS.len(), VARIANTS.len()));
    assert_eq!(found.rows[0].features, all.cols());
    assert_eq!(found.rows.last().unwrap().features, all.cols() + DEPTH_NAMES.len() + PRICE_NAMES.len());
    // Sessions from the generator know the catalog, so every eligible one has its price norms.
    assert!(sessions.iter().filter(|s| s.eligible).all(|s| s.price_norms.iter().all(|v| v.is_finite())));
    assert!(found.test.0 == all.rows_of(prepare::Split::Test).len() && found.test.1 > 0);
    for r in &found.rows {
        assert!(r.roc_auc > 0.6 && r.roc_auc < found.oracle[0] + 0.05, "{r:?}");
        if r.variant.starts_with("without") {
            assert!(r.features < all.cols(), "{r:?} leaves nothing out");
        }
    }
    let [oracle, observable, inferable] = found.oracle;
    assert!(inferable <= observable + 0.01 && observable <= oracle + 0.01, "{:?}", found.oracle);
    assert!(!std::path::Path::new(&opts.models_dir).exists(), "--ablation wrote a model directory");
    assert!(ablation::summary(&found).contains("inferable oracle"));
}
