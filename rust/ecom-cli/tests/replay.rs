//! `ecom replay job` against the local stack (dev/up): the job's dead letters as the sink
//! stores them (MongoDB `invalid`) go back to the raw topic with their replay header, chosen by
//! reason and time, once each; a truncated letter is counted, not sent.
use base64::Engine as _;
use mongodb::bson::doc;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn env(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.into())
}

fn replay(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ecom")).args(["replay", "job"]).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "ecom replay job {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local stack (dev/up)"]
async fn job_dead_letters_go_back_to_the_raw_topic_once() {
    let tag = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let (db_name, topic) = (format!("ecom_test_replay_{tag}"), format!("ecom-test-replay-{tag}"));
    let mongo = mongodb::Client::with_uri_str(env("MONGODB_URL", "mongodb://127.0.0.1:27017")).await.unwrap();
    let db = mongo.database(&db_name);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let letters = [
        ("ecom.events.raw/0/1", "REJECT_REASON_MISSING_FIELD", 1_000, false, "first"),
        ("ecom.events.raw/1/2", "REJECT_REASON_LATE", 2_000, false, "second"),
        ("ecom.events.raw/0/3", "REJECT_REASON_OVERSIZE_RECORD", 3_000, true, "third, a prefix"),
        ("ecom.events.raw/1/4", "REJECT_REASON_MISSING_FIELD", 9_000, false, "too late for --until-ms"),
    ];
    let docs = letters.iter().map(|(id, reason, at, truncated, raw)| {
        doc! {"_id": id, "reason": reason, "rejected_at": at, "raw_truncated": truncated, "raw": b64(raw)}
    });
    db.collection("invalid").insert_many(docs).await.unwrap();
    let base = ["--mongo-db", &db_name, "--raw-topic", &topic];

    let dry = replay(&[&base[..], &["--reason", "MISSING_FIELD", "--dry-run"]].concat());
    assert!(dry.contains("2 job dead letters chosen: 2 would be replayed"), "{dry}");
    let first = replay(&[&base[..], &["--since-ms", "500", "--until-ms", "5000"]].concat());
    assert!(first.contains("3 job dead letters chosen: 2 replayed"), "{first}");
    assert!(first.contains("1 not replayable"), "{first}");
    let again = replay(&[&base[..], &["--until-ms", "5000"]].concat());
    assert!(again.contains("1 job dead letters chosen: 0 replayed"), "the truncated one only:\n{again}");

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", env("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
        .set("group.id", format!("ecom-test-replay-{tag}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let m =
            tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await.expect("no replayed record").unwrap();
        let header = m.headers().and_then(|h| h.iter().find(|h| h.key == "ecom-replay-of")).and_then(|h| h.value);
        got.push((
            String::from_utf8_lossy(m.payload().unwrap()).to_string(),
            header.map(|v| String::from_utf8_lossy(v).to_string()),
        ));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ("first".to_string(), Some("ecom.events.raw/0/1".to_string())),
            ("second".to_string(), Some("ecom.events.raw/1/2".to_string())),
        ]
    );
    let invalid = db.collection::<mongodb::bson::Document>("invalid");
    assert_eq!(invalid.count_documents(doc! {"replayed_at_ms": {"$exists": true}}).await.unwrap(), 2);
    db.drop().await.unwrap();
}
