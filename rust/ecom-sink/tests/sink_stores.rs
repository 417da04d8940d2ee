//! Service tests of the sink against the real Kafka, Elasticsearch and MongoDB of the local
//! stack (dev/up). Each test uses its own topic, index prefix and database.
use ecom_proto::v1::{EnrichedEvent, Event, SourceOffset};
use ecom_sink::stores::Stores;
use ecom_sink::{DeliveryMode, SinkConfig};
use prost::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn env(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.into())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos())
}

fn cfg(tag: &str) -> SinkConfig {
    SinkConfig {
        brokers: env("KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        topic: unique(&format!("ecom-test-{tag}")),
        group_id: unique("ecom-test-sink"),
        es_url: env("ES_URL", "http://127.0.0.1:9200"),
        index_prefix: unique(&format!("ecom-test-{tag}")),
        mongo_url: env("MONGODB_URL", "mongodb://127.0.0.1:27017"),
        mongo_db: unique(&format!("ecom_test_{tag}")).replace('-', "_"),
        batch_max: 100,
        batch_wait: Duration::from_millis(100),
        metrics_addr: "127.0.0.1:19464".parse().unwrap(),
        delivery: DeliveryMode::AtLeastOnce,
    }
}

fn event(i: usize) -> EnrichedEvent {
    EnrichedEvent {
        event: Some(Event {
            event_id: format!("evt-{i:05}"),
            event_time_ms: 1_767_225_600_000 + i as i64, // 2026-01-01
            session_id: format!("s{}", i % 7),
            user_id: "u1".into(),
            kind: 3,
            product_id: Some(format!("P{i:05}")),
            ..Default::default()
        }),
        ip_hash: "abc".into(),
        verdict: 1,
        source: Some(SourceOffset { topic: "ecom.events.raw".into(), partition: 0, offset: i as i64 }),
        ..Default::default()
    }
}

async fn es_count(url: &str, prefix: &str) -> u64 {
    let http = reqwest::Client::new();
    http.post(format!("{url}/{prefix}-*/_refresh")).send().await.unwrap();
    let v: serde_json::Value = http.get(format!("{url}/{prefix}-*/_count")).send().await.unwrap().json().await.unwrap();
    v["count"].as_u64().unwrap_or(0)
}

async fn mongo_count(c: &SinkConfig) -> u64 {
    let client = mongodb::Client::with_uri_str(&c.mongo_url).await.unwrap();
    client
        .database(&c.mongo_db)
        .collection::<mongodb::bson::Document>("events")
        .count_documents(mongodb::bson::doc! {})
        .await
        .unwrap()
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn writes_are_idempotent_by_event_id_in_both_stores() {
    let c = cfg("stores");
    let stores = Stores::connect(&c).await.unwrap();
    stores.ensure_schema().await.unwrap();
    let batch: Vec<_> = (0..50).map(event).collect();
    stores.write(&batch, &[]).await.unwrap();
    stores.write(&batch[..20], &[]).await.unwrap(); // a replay overwrites
    assert_eq!(es_count(&c.es_url, &c.index_prefix).await, 50);
    assert_eq!(mongo_count(&c).await, 50);
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn sink_moves_kafka_records_into_both_stores_and_dead_letters_garbage() {
    let c = cfg("run");
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &c.brokers).create().unwrap();
    for i in 0..300 {
        let v = event(i).encode_to_vec();
        producer.send(FutureRecord::to(&c.topic).key("k").payload(&v), Duration::from_secs(10)).await.unwrap();
    }
    // One record that is not an EnrichedEvent: it must land in the dead letter, not vanish.
    producer
        .send(FutureRecord::to(&c.topic).key("k").payload(&[0x0fu8, 1, 2][..]), Duration::from_secs(10))
        .await
        .unwrap();

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(ecom_sink::run(c.clone(), async move {
        let _ = rx.await;
    }));
    let deadline = Instant::now() + Duration::from_secs(60);
    while mongo_count(&c).await < 300 || es_count(&c.es_url, &c.index_prefix).await < 300 {
        assert!(Instant::now() < deadline, "sink did not write 300 events within 60 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), run).await.unwrap().unwrap().unwrap();
    assert_eq!(es_count(&c.es_url, &c.index_prefix).await, 300);
    assert_eq!(mongo_count(&c).await, 300);
    let client = mongodb::Client::with_uri_str(&c.mongo_url).await.unwrap();
    let dead = client
        .database(&c.mongo_db)
        .collection::<mongodb::bson::Document>(ecom_sink::stores::DEADLETTER_COLLECTION)
        .count_documents(mongodb::bson::doc! {})
        .await
        .unwrap();
    assert_eq!(dead, 1);
}
