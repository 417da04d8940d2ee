//! `ecom models` against a real `ecom serve`: promote moves what serve scores with, a version
//! that cannot serve is refused and changes nothing, rollback brings the earlier one back, and
//! the list and the history say so; a shadow version's score comes beside each answer and never
//! changes it. Needs the local stack's Redis (serve's Guard).
use ecom_proto::v1::score_client::ScoreClient;
use ecom_proto::v1::{DescribeRequest, ScoreBatchRequest, ScoreRequest};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn ecom(args: &[&str], models: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecom")).args(args).env("ECOM_MODELS_DIR", models).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills the serve on drop.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serving(score: &mut ScoreClient<tonic::transport::Channel>) -> String {
    score.describe(DescribeRequest {}).await.unwrap().into_inner().model_version
}

async fn wait_for(score: &mut ScoreClient<tonic::transport::Channel>, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while serving(score).await != version {
        assert!(Instant::now() < deadline, "serve did not move to {version}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack (dev/up); trains a small model (~20 s)"]
async fn promote_and_rollback_move_what_a_running_serve_scores_with() {
    let root = std::env::temp_dir().join(format!("ecom-models-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (data, models) = (root.join("data"), root.join("models"));
    ok(ecom(&["generate", "--events", "30000", "--seed", "5", "--quiet", "--out", data.to_str().unwrap()], &models));
    ok(ecom(&["train", "--quiet", "--from", data.to_str().unwrap(), "--version-name", "v1"], &models));
    // A second and a third version: the same model under other names, as a retrain would be.
    copy_dir(&models.join("v1"), &models.join("v2"));
    copy_dir(&models.join("v1"), &models.join("v3"));
    std::fs::remove_file(models.join("v3/xgboost.json")).unwrap();

    let (grpc, http) = (free_port(), free_port());
    let log = std::fs::File::create(root.join("serve.log")).unwrap();
    let _serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_ecom"))
            .args(["serve", "--grpc-addr", &format!("127.0.0.1:{grpc}"), "--http-addr", &format!("127.0.0.1:{http}")])
            .args(["--reload-ms", "100"])
            .env("ECOM_MODELS_DIR", &models)
            .env("ECOM_IP_HASH_KEY", "models-test-key")
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut score = loop {
        if let Ok(c) = ScoreClient::connect(format!("http://127.0.0.1:{grpc}")).await {
            break c;
        }
        assert!(Instant::now() < deadline, "{}", std::fs::read_to_string(root.join("serve.log")).unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(serving(&mut score).await, "v1");

    let listed: Vec<serde_json::Value> =
        ok(ecom(&["models", "list", "--json"], &models)).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let by = |v: &str| listed.iter().find(|x| x["version"] == v).unwrap().clone();
    assert_eq!((by("v1")["serving"].as_bool(), by("v2")["serving"].as_bool()), (Some(true), Some(false)));
    assert!(by("v1")["roc_auc"].as_f64().unwrap() > 0.6, "{listed:?}");
    assert!(by("v1")["problem"].is_null() && by("v3")["problem"].as_str().unwrap().contains("no xgboost.json"));

    let out = ok(ecom(&["models", "promote", "v2"], &models));
    assert!(out.contains("promote: v1 -> v2"), "{out}");
    wait_for(&mut score, "v2").await;

    // A version that cannot serve: refused as a configuration error, and nothing moves.
    let refused = ecom(&["models", "promote", "v3"], &models);
    assert_eq!(refused.status.code(), Some(2), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("v3 has no xgboost.json"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(serving(&mut score).await, "v2");

    let out = ok(ecom(&["models", "rollback"], &models));
    assert!(out.contains("rollback: v2 -> v1"), "{out}");
    wait_for(&mut score, "v1").await;

    let history = ok(ecom(&["models", "history"], &models));
    let moves: Vec<Vec<&str>> = history.lines().map(|l| l.split('\t').skip(1).collect()).collect();
    assert_eq!(moves, [vec!["train", "-", "v1"], vec!["promote", "v1", "v2"], vec!["rollback", "v2", "v1"]]);
    let table = ok(ecom(&["models", "list"], &models));
    assert!(table.lines().any(|l| l.starts_with("v1 ") && l.contains("serving")), "{table}");

    // Shadow: v2 scores every row beside v1, in the same answer; the answers stay v1's.
    let refused = ecom(&["models", "shadow", "v1"], &models);
    assert_eq!(refused.status.code(), Some(2), "the serving version cannot be its own shadow");
    assert!(ok(ecom(&["models", "shadow", "v2"], &models)).contains("shadow: v2"));
    let table = ok(ecom(&["models", "list"], &models));
    assert!(table.lines().any(|l| l.starts_with("v2 ") && l.contains("shadow")), "{table}");
    let info = score.describe(DescribeRequest {}).await.unwrap().into_inner();
    let batch = ScoreBatchRequest {
        requests: (0..20)
            .map(|i| ScoreRequest {
                session_id: format!("s{i}"),
                features: vec![f64::from(i as u32); info.core_feature_count as usize],
                feature_schema_hash: info.core_schema_hash.clone(),
                ..Default::default()
            })
            .collect(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    // serve loads the shadow within its --reload-ms; answers before that carry none.
    let answers = loop {
        let answers = score.predict_batch(batch.clone()).await.unwrap().into_inner().responses;
        assert!(answers.iter().all(|a| a.model_version == "v1"), "a shadow changed an answer: {answers:?}");
        if answers.iter().any(|a| a.shadow_probability.is_some()) {
            break answers;
        }
        assert!(Instant::now() < deadline, "no shadow scores in the answers");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Every row, and v2 is v1 under another name: the same scores.
    for a in &answers {
        assert_eq!(a.shadow_model_version, "v2");
        assert!((a.shadow_probability.unwrap() - a.purchase_probability).abs() < 1e-9, "{a:?}");
    }
    let single = score.predict(batch.requests[3].clone()).await.unwrap().into_inner();
    assert_eq!(
        (single.shadow_probability, single.shadow_model_version.as_str()),
        (answers[3].shadow_probability, "v2")
    );

    ok(ecom(&["models", "shadow", "--off"], &models));
    // Ready when serve says it unloaded the shadow (its gauge for v2 drops to 0).
    let unloaded = "ecom_model_loaded{version=\"v2\",role=\"shadow\"} 0";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = reqwest::get(format!("http://127.0.0.1:{http}/metrics")).await.unwrap().text().await.unwrap();
        if text.lines().any(|l| l == unloaded) {
            break;
        }
        assert!(Instant::now() < deadline, "serve did not unload the shadow:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = score.predict_batch(batch).await.unwrap().into_inner().responses;
    assert!(
        after.iter().all(|a| a.shadow_probability.is_none() && a.shadow_model_version.is_empty()),
        "shadow scoring went on after --off"
    );
    let _ = std::fs::remove_dir_all(&root);
}
