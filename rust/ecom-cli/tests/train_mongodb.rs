//! `ecom train --from mongodb` against the local stack (dev/up): the generator's events stored
//! in MongoDB by the sink's own code (joined to their products as the job joins them), the truth
//! in a Kafka topic. The same data
//! as files must give the same training rows, so the same models and metrics.
use ecom_gen::{GenConfig, Generator, Payload};
use ecom_proto::v1::{EnrichedEvent, SourceOffset};
use ecom_sink::stores::Stores;
use ecom_sink::SinkConfig;
use prost::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn env(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.into())
}

fn train(args: &[&str], models: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ecom"))
        .args(["train", "--quiet", "--threads", "1", "--forest-trees", "30", "--mlp-epochs", "5"])
        .args(["--version-name", "v1", "--models-dir"])
        .arg(models)
        .args(args)
        .output()
        .expect("running ecom train");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ecom train {args:?} failed:\n{stderr}");
    serde_json::from_slice(&std::fs::read(models.join("v1/metrics.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local stack (dev/up)"]
async fn training_from_mongodb_matches_training_from_files() {
    let tag = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let root = std::env::temp_dir().join(format!("ecom-train-mongodb-{tag}"));
    let files = root.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let brokers = env("KAFKA_BOOTSTRAP", "127.0.0.1:9092");
    let cfg = SinkConfig {
        brokers: brokers.clone(),
        es_url: ecom_core::secret::SecretUrl::new(&env("ES_URL", "http://127.0.0.1:9200"), None),
        index_prefix: format!("ecom-test-train-{tag}"),
        mongo_url: ecom_core::secret::SecretUrl::new(&env("MONGODB_URL", "mongodb://127.0.0.1:27017"), None),
        mongo_db: format!("ecom_test_train_{tag}"),
        ..Default::default()
    };
    let truth_topic = format!("ecom-test-truth-{tag}");
    let stores = Stores::connect(&cfg).await.unwrap();
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    let send = |topic: &str, key: String, value: Vec<u8>| {
        let topic = topic.to_string();
        let producer = producer.clone();
        async move {
            producer
                .send(FutureRecord::to(&topic).key(&key).payload(&value), Duration::from_secs(10))
                .await
                .map_err(|(e, _)| e)
                .unwrap();
        }
    };

    // The generator's output twice: as files, and as the pipeline stores it (valid events in
    // MongoDB with their raw offset and product fields, truth in Kafka).
    let mut g = Generator::new(GenConfig { events: 40_000, seed: 9, malformed_rate: 0.02, ..Default::default() });
    let mut out = ecom_gen::out_dir::Writer::create(&files, false).unwrap();
    let catalog: std::collections::HashMap<String, ecom_proto::v1::Product> =
        g.catalog().iter().map(|p| (p.product_id.clone(), p.clone())).collect();
    for p in g.catalog() {
        out.product(p).unwrap();
    }
    let mut batch = Vec::new();
    let mut truths = Vec::new();
    while let Some(r) = g.next() {
        out.record(&r).unwrap();
        if let (Payload::Event(e), None) = (&r.payload, r.expected_reject) {
            // Joined to its product as the job's catalog join does.
            let product = e.product_id.as_ref().and_then(|p| catalog.get(p));
            batch.push(EnrichedEvent {
                source: Some(SourceOffset { topic: "raw".into(), partition: 0, offset: r.sequence as i64 }),
                ..ecom_core::features::enrich(e.clone(), product)
            });
        }
        truths.extend(g.take_truth());
        if batch.len() == 1_000 {
            stores.write_mongo_only(&batch).await.unwrap();
            batch.clear();
        }
    }
    stores.write_mongo_only(&batch).await.unwrap();
    truths.extend(g.take_truth());
    out.truth(&truths).unwrap();
    out.finish().unwrap();
    for t in &truths {
        send(&truth_topic, String::new(), t.encode_to_vec()).await;
    }

    let from_files = train(&["--from", files.to_str().unwrap()], &root.join("m-files"));
    let from_mongo = train(
        &[
            "--from",
            "mongodb",
            "--mongo-db",
            &cfg.mongo_db,
            "--bootstrap-servers",
            &brokers,
            "--truth-topic",
            &truth_topic,
        ],
        &root.join("m-mongo"),
    );
    assert!(from_mongo["source"].as_str().unwrap().contains(&cfg.mongo_db));
    assert!(from_mongo["load"]["eligible"].as_u64().unwrap() > 2_000, "{}", from_mongo["load"]);
    for key in ["split", "oracle_auc", "observable_oracle_auc", "inferable_oracle_auc"] {
        assert_eq!(from_mongo[key], from_files[key], "{key}");
    }
    for model in ["xgboost", "random_forest"] {
        assert_eq!(from_mongo["models"][model]["roc_auc"], from_files["models"][model]["roc_auc"], "{model}");
    }
    mongodb::Client::with_uri_str(cfg.mongo_url.expose()).await.unwrap().database(&cfg.mongo_db).drop().await.unwrap();
    let _ = std::fs::remove_dir_all(&root);
}
