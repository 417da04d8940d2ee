//! Score and Recommend over gRPC with a real model trained here by ecom-train: answers equal
//! offline XGBoost, SHAP adds up, both feature schemas, clear errors, hot reload under load
//! with zero failed requests, and a broken version that never replaces a good one.
use ecom_core::lsh::{Lsh, DEFAULT_PARAMS};
use ecom_proto::v1::recommend_client::RecommendClient;
use ecom_proto::v1::score_client::ScoreClient;
use ecom_proto::v1::{DescribeRequest, ScoreBatchRequest, ScoreRequest, SimilarBatchRequest, SimilarRequest};
use ecom_train::{boost, data, prepare};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{free_addr, generate_and_train, redis_url, tmp, Running};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the local stack (dev/up); trains a small model (~20 s)"]
async fn score_and_recommend_with_a_trained_model_and_hot_reload() {
    let data_dir = tmp("data");
    let models = tmp("models");
    generate_and_train(&data_dir, &models, 60_000, "v1");

    let http = free_addr();
    let cfg = ecom_serve::ServeConfig {
        grpc_addr: free_addr(),
        http_addr: http,
        redis_url: ecom_core::secret::SecretUrl::new(&redis_url(), None),
        max_batch: 500,
        models_dir: models.clone(),
        reload_every: Duration::from_millis(100),
        ..Default::default()
    };
    let serve = Running::start(cfg).await;
    let channel = serve.channel.clone();
    let mut score = ScoreClient::new(channel.clone());
    let info = score.describe(DescribeRequest {}).await.unwrap().into_inner();
    assert_eq!(info.model_version, "v1");
    assert_eq!(info.feature_names, ecom_model::neighbours::feature_names());
    assert_eq!(info.core_feature_count as usize, ecom_core::features::NAMES.len());
    assert_eq!(info.core_schema_hash, ecom_core::features::schema_hash());
    assert!(info.recommend_sessions > 50, "{info:?}");

    // The same rows training built, scored offline by the saved booster and online by serve.
    let (sessions, _) = data::load_dir(&data_dir, false).unwrap();
    let rule = prepare::SplitRule::for_sessions(&sessions);
    let (table, _, _) = prepare::build(&sessions, DEFAULT_PARAMS, &rule).unwrap();
    let rows: Vec<usize> = (0..table.y.len()).step_by(table.y.len() / 200).take(200).collect();
    let x = table.x_of(&rows);
    let c = table.cols();
    let bst = boost::load(&models.join("v1/xgboost.json")).unwrap();
    let offline = boost::predict(&bst, &boost::matrix(&x, rows.len(), None).unwrap()).unwrap();
    let full = |i: usize, top_k: u32| ScoreRequest {
        session_id: table.session_id[rows[i]].clone(),
        features: x[i * c..(i + 1) * c].iter().map(|v| f64::from(*v)).collect(),
        feature_schema_hash: info.feature_schema_hash.clone(),
        top_k_reasons: top_k,
        ..Default::default()
    };
    for (i, want) in offline.iter().enumerate().take(50) {
        let plain = score.predict(full(i, 0)).await.unwrap().into_inner();
        assert!((plain.purchase_probability - want).abs() < 1e-6, "row {i}: {} vs {want}", plain.purchase_probability);
        assert!(plain.reasons.is_empty());
        let shap = score.predict(full(i, 5)).await.unwrap().into_inner();
        assert!((shap.purchase_probability - want).abs() < 1e-5, "row {i} with SHAP: {}", shap.purchase_probability);
        assert_eq!((shap.reasons.len(), shap.model_version.as_str()), (5, "v1"));
        assert!(shap.reasons.windows(2).all(|w| w[0].contribution.abs() >= w[1].contribution.abs()));
        let named = info.feature_names.iter().position(|n| *n == shap.reasons[0].feature).unwrap();
        assert_eq!(shap.reasons[0].value, f64::from(x[i * c + named]));
    }
    let batch = ScoreBatchRequest { requests: (0..rows.len()).map(|i| full(i, 3)).collect() };
    let out = score.predict_batch(batch).await.unwrap().into_inner().responses;
    assert_eq!(out.len(), rows.len());
    for (i, (r, want)) in out.iter().zip(&offline).enumerate() {
        assert!((r.purchase_probability - want).abs() < 1e-5, "batch row {i}");
        assert_eq!(r.session_id, table.session_id[rows[i]]);
    }
    // A batch that asks reasons of some rows only: those get them, the others none, and every
    // probability is the same either way.
    let mixed =
        ScoreBatchRequest { requests: (0..rows.len()).map(|i| full(i, if i % 3 == 0 { 3 } else { 0 })).collect() };
    let out = score.predict_batch(mixed).await.unwrap().into_inner().responses;
    assert_eq!(out.len(), rows.len());
    for (i, (r, want)) in out.iter().zip(&offline).enumerate() {
        assert!((r.purchase_probability - want).abs() < 1e-5, "mixed batch row {i}");
        assert_eq!(r.reasons.len(), if i % 3 == 0 { 3 } else { 0 }, "mixed batch row {i}");
        assert_eq!(r.session_id, table.session_id[rows[i]]);
    }

    // The core schema + tokens: serve adds the neighbour features from its index.
    let nb: ecom_model::neighbours::NeighbourIndex =
        serde_json::from_slice(&std::fs::read(models.join("v1/neighbours.json")).unwrap()).unwrap();
    let lsh = Lsh::new(DEFAULT_PARAMS).unwrap();
    let core = ecom_core::features::NAMES.len();
    for (i, &r) in rows.iter().enumerate().take(30) {
        let tokens = sessions[r].state.tokens.clone();
        let mut row = x[i * c..i * c + core].to_vec();
        let extra = nb.features(&lsh.band_buckets(&lsh.signature(&tokens)), nb.prior);
        row.extend(extra.iter().map(|v| *v as f32));
        let want = boost::predict(&bst, &boost::matrix(&row, 1, None).unwrap()).unwrap()[0];
        let req = ScoreRequest {
            features: row[..core].iter().map(|v| f64::from(*v)).collect(),
            feature_schema_hash: info.core_schema_hash.clone(),
            tokens,
            ..Default::default()
        };
        let got = score.predict(req).await.unwrap().into_inner().purchase_probability;
        assert!((got - want).abs() < 1e-6, "core row {i}: {got} vs {want}");
    }

    // Clear errors that name the field.
    let err = score.predict(ScoreRequest { feature_schema_hash: "nope".into(), ..full(0, 0) }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("feature_schema_hash") && err.message().contains(&info.feature_schema_hash));
    let mut short = full(0, 0);
    short.features.pop();
    let err = score.predict(short).await.unwrap_err();
    assert!(err.message().starts_with("features:"), "{}", err.message());
    let mut inf = full(0, 0);
    inf.features[3] = f64::INFINITY;
    let err = score.predict(inf).await.unwrap_err();
    assert!(err.message().contains("features[3]") && err.message().contains(&info.feature_names[3]));
    let big = ScoreBatchRequest { requests: (0..501).map(|_| full(0, 0)).collect() };
    assert_eq!(score.predict_batch(big).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    let mut bad_batch = ScoreBatchRequest { requests: (0..3).map(|i| full(i, 0)).collect() };
    bad_batch.requests[2].features.clear();
    let err = score.predict_batch(bad_batch).await.unwrap_err();
    assert!(err.message().starts_with("requests[2].features"), "{}", err.message());

    // Recommend: a purchasing session's prefix finds products bought in similar sessions.
    let mut rec = RecommendClient::new(channel.clone());
    let buyer = sessions.iter().rev().find(|s| s.eligible && !s.bought.is_empty() && s.state.tokens.len() > 3).unwrap();
    let sim = rec.similar(SimilarRequest { tokens: buyer.state.tokens.clone(), k: 5 }).await.unwrap().into_inner();
    assert_eq!(sim.model_version, "v1");
    assert!(sim.similar_sessions >= 1 && !sim.products.is_empty() && sim.products.len() <= 5, "{sim:?}");
    assert!(sim.products.windows(2).all(|w| w[0].similarity >= w[1].similarity));
    assert!(sim.products.iter().all(|p| p.similarity > 0.0 && p.similarity <= 1.0 && p.sessions >= 1));
    // The buyer itself is in the index: what it bought is found at similarity 1.
    assert!(sim.products.iter().any(|p| buyer.bought.contains(&p.product_id) && p.similarity == 1.0), "{sim:?}");
    let err = rec.similar(SimilarRequest { tokens: vec![], k: 5 }).await.unwrap_err();
    assert!(err.code() == tonic::Code::InvalidArgument && err.message().starts_with("tokens"));
    // SimilarBatch answers in request order, each as Similar would; a bad item is named.
    let one = SimilarRequest { tokens: buyer.state.tokens.clone(), k: 5 };
    let batch = rec
        .similar_batch(SimilarBatchRequest { requests: vec![one.clone(), SimilarRequest { k: 2, ..one.clone() }] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.responses.len(), 2);
    assert_eq!(batch.responses[0], sim);
    assert_eq!(batch.responses[1].products[..], sim.products[..sim.products.len().min(2)]);
    let err = rec
        .similar_batch(SimilarBatchRequest { requests: vec![one, SimilarRequest { tokens: vec![], k: 5 }] })
        .await
        .unwrap_err();
    assert!(err.message().starts_with("requests[1].tokens"), "{}", err.message());

    // Hot reload under load: four clients score without pause while v2 is published.
    let stop = Arc::new(AtomicBool::new(false));
    let (errors, v2_seen, sent) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for t in 0..4 {
        let (mut client, stop, errors, v2_seen, sent, req) =
            (score.clone(), stop.clone(), errors.clone(), v2_seen.clone(), sent.clone(), full(t, 3));
        load.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < 200_000 {
                match client.predict(req.clone()).await {
                    Ok(r) if r.get_ref().model_version == "v2" => _ = v2_seen.fetch_add(1, Ordering::Relaxed),
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("request failed during reload: {e}");
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += 1;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            n
        }));
    }
    // Publish v2 once the load is running on v1.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sent.load(Ordering::Relaxed) < 200 {
        assert!(Instant::now() < deadline, "the load did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    copy_dir(&models.join("v1"), &models.join("v2"));
    ecom_model::set_current(&models, "v2").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while v2_seen.load(Ordering::Relaxed) < 100 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for l in load {
        total += l.await.unwrap();
    }
    assert_eq!(errors.load(Ordering::Relaxed), 0, "failed requests during the reload");
    assert!(v2_seen.load(Ordering::Relaxed) >= 100, "v2 never served ({total} requests)");
    assert!(total > v2_seen.load(Ordering::Relaxed), "v1 was not serving before the reload");

    // A broken version never replaces the good one; it is counted.
    std::fs::create_dir_all(models.join("v3")).unwrap();
    for f in ["schema.json", "neighbours.json"] {
        std::fs::copy(models.join("v1").join(f), models.join("v3").join(f)).unwrap();
    }
    std::fs::write(models.join("v3/xgboost.json"), b"{ not a model").unwrap();
    ecom_model::set_current(&models, "v3").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let m = reqwest::get(format!("http://{http}/metrics")).await.unwrap().text().await.unwrap();
        if m.contains("ecom_model_reload_errors_total 1") {
            break m;
        }
        assert!(Instant::now() < deadline, "the broken v3 was never tried:\n{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let r = score.predict(full(0, 0)).await.unwrap().into_inner();
    assert_eq!(r.model_version, "v2");
    assert!(metrics.contains("ecom_grpc_seconds_bucket{method=\"Score.Predict\""), "{metrics}");
    let health = reqwest::get(format!("http://{http}/health")).await.unwrap().text().await.unwrap();
    assert!(health.contains("\"version\":\"v2\""), "{health}");

    serve.stop().await;
    for d in [data_dir, models] {
        let _ = std::fs::remove_dir_all(d);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}
