//! ecom serve called from another language's official gRPC stack: Python grpcio with stubs
//! generated from proto/ (tests/grpc_client.py), against a model trained here and real Redis.
//! Needs the venv dev/install makes (`ECOM_CHECK_PYTHON`); dev/test runs it.
use ecom_core::lsh::DEFAULT_PARAMS;
use ecom_train::{boost, data, prepare};
use std::path::Path;
use std::time::Duration;

mod common;
use common::{free_addr, generate_and_train, redis_url, tmp, Running};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local stack (dev/up) and the check venv (dev/install)"]
async fn python_grpcio_client_discovers_and_calls_every_service() {
    let python = std::env::var("ECOM_CHECK_PYTHON")
        .expect("ECOM_CHECK_PYTHON is not set: source dev/env.sh (dev/install makes the venv with grpcio)");
    assert!(Path::new(&python).exists(), "{python} does not exist: run dev/install");
    let (data_dir, models) = (tmp("py-data"), tmp("py-models"));
    generate_and_train(&data_dir, &models, 40_000, "v7");

    // Rows to score and what XGBoost says offline about them.
    let (sessions, _) = data::load_dir(&data_dir, false).unwrap();
    let rule = prepare::SplitRule::for_sessions(&sessions);
    let (table, _, _) = prepare::build(&sessions, DEFAULT_PARAMS, &rule).unwrap();
    let rows: Vec<usize> = (0..20).map(|i| i * table.y.len() / 20).collect();
    let x = table.x_of(&rows);
    let bst = boost::load(&models.join("v7/xgboost.json")).unwrap();
    let offline = boost::predict(&bst, &boost::matrix(&x, rows.len(), None).unwrap()).unwrap();
    let c = table.cols();
    let buyer = sessions.iter().find(|s| s.eligible && !s.bought.is_empty() && s.state.tokens.len() > 3).unwrap();
    let input = serde_json::json!({
        "rows": x.chunks(c).map(|r| r.iter().map(|v| f64::from(*v)).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "tokens": buyer.state.tokens,
    });
    std::fs::write(data_dir.join("input.json"), serde_json::to_vec(&input).unwrap()).unwrap();

    let grpc = free_addr();
    let cfg = ecom_serve::ServeConfig {
        grpc_addr: grpc,
        http_addr: free_addr(),
        redis_url: ecom_core::secret::SecretUrl::new(&redis_url(), None),
        models_dir: models.clone(),
        reload_every: Duration::from_millis(200),
        ..Default::default()
    };
    let serve = Running::start(cfg).await;
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc_client.py");
    let out_path = data_dir.join("python.json");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(grpc.to_string())
        .arg(&proto)
        .arg(data_dir.join("input.json"))
        .arg(&out_path)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run).await.expect("python client timed out").unwrap();
    assert!(out.status.success(), "python client failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serve.stop().await;

    let py: serde_json::Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    for s in ["ecom.v1.Guard", "ecom.v1.Score", "ecom.v1.Recommend", "grpc.health.v1.Health"] {
        assert!(py["services"].as_array().unwrap().iter().any(|v| v == s), "reflection lacks {s}: {py}");
        if s.starts_with("ecom") {
            assert_eq!(py["health"][s], "SERVING", "{py}");
        }
    }
    assert_eq!(py["model_version"], "v7");
    assert_eq!(py["feature_count"].as_u64().unwrap() as usize, c);
    let nums = |k: &str| -> Vec<f64> { py[k].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect() };
    let (single, batch) = (nums("probabilities"), nums("batch_probabilities"));
    assert_eq!((single.len(), batch.len()), (rows.len(), rows.len()));
    for i in 0..rows.len() {
        assert!((single[i] - offline[i]).abs() < 1e-5, "row {i}: python got {} offline {}", single[i], offline[i]);
        assert!((batch[i] - offline[i]).abs() < 1e-6, "batch row {i}");
        assert_eq!(py["reasons"][i].as_array().unwrap().len(), 3);
    }
    assert_eq!(py["bad_request"]["code"], "INVALID_ARGUMENT");
    assert!(py["bad_request"]["details"].as_str().unwrap().contains("feature_schema_hash"), "{py}");
    assert_eq!(py["guard"]["fallback"], false);
    assert!(py["guard"]["verdict"].as_str().unwrap().starts_with("VERDICT_"), "{py}");
    assert!(!py["similar"].as_array().unwrap().is_empty(), "{py}");
    for d in [data_dir, models] {
        let _ = std::fs::remove_dir_all(d);
    }
}
