//! Service tests of the sink against the real Kafka, Elasticsearch and MongoDB of the local
//! stack (dev/up). Each test uses its own topic, index prefix and database.
use ecom_proto::v1::{
    CalibrationBin, EnrichedEvent, Event, InvalidEvent, ModelQuality, Session, SourceOffset, WindowMetrics,
};
use ecom_sink::record::Batch;
use ecom_sink::stores::{
    Stores, DEADLETTER_COLLECTION, EVENTS_COLLECTION, INVALID_COLLECTION, METRICS_COLLECTION, QUALITY_COLLECTION,
    SESSIONS_COLLECTION,
};
use ecom_sink::SinkConfig;
use mongodb::bson::{doc, Document};
use prost::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ecom_test_support::SecureMongo;

mod common;

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos())
}

fn cfg(tag: &str) -> SinkConfig {
    SinkConfig { metrics_addr: "127.0.0.1:19464".parse().unwrap(), ..common::scratch(tag) }
}

const JAN_1_2026_MS: i64 = 1_767_225_600_000;

fn event(i: usize) -> EnrichedEvent {
    EnrichedEvent {
        event: Some(Event {
            event_id: format!("evt-{i:05}"),
            event_time_ms: JAN_1_2026_MS + i as i64,
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

/// Sessions one day apart from the 2nd of January on: each lands in its own daily index.
fn session(i: usize) -> Session {
    let start_ms = JAN_1_2026_MS + (i as i64 + 1) * 86_400_000;
    Session {
        id: format!("s{i}@{start_ms}"),
        session_id: format!("s{i}"),
        user_id: "u1".into(),
        start_ms,
        end_ms: start_ms + 60_000,
        events: 3,
        purchased: i.is_multiple_of(2),
        revenue_cents: if i.is_multiple_of(2) { 4_999 } else { 0 },
        features: vec![1.0, 2.0],
        closed_at_ms: start_ms + 1_860_000,
        ..Default::default()
    }
}

fn metrics(i: usize) -> WindowMetrics {
    let start = JAN_1_2026_MS + i as i64 * 60_000;
    WindowMetrics {
        id: format!("{start}/sofas"),
        window_start_ms: start,
        window_end_ms: start + 60_000,
        category: "sofas".into(),
        views: 10 + i as i64,
        conversion: 0.1,
        epsilon_spent: 2.0,
        mechanism: "discrete_laplace".into(),
        ..Default::default()
    }
}

/// The first `n` records of `topic` (key, JSON value), waiting up to 20 s for them.
async fn read_topic(brokers: &str, topic: &str, n: usize) -> Vec<(String, serde_json::Value)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message as _;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("ecom-test-read"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).to_string();
            out.push((key, serde_json::from_slice(m.payload().unwrap_or_default()).unwrap()));
        }
    }
    out
}

/// A dead letter of the job: the raw record at ecom.events.raw/0/<i>, rejected as LATE.
fn invalid(i: usize) -> InvalidEvent {
    InvalidEvent {
        raw: vec![1, 2, 3],
        source: Some(SourceOffset { topic: "ecom.events.raw".into(), partition: 0, offset: i as i64 }),
        reason: 12,
        reason_code: "LATE".into(),
        detail: format!("event {i} is late"),
        rejected_at_ms: JAN_1_2026_MS + i as i64,
        raw_size_bytes: 3,
        raw_sha256: "ab".into(),
        ..Default::default()
    }
}

/// Both stores hold `n` dead letters of the job, the first as it was written.
async fn assert_invalid_stored(c: &SinkConfig, n: u64) {
    assert_eq!(es_count(c.es_url.expose(), &c.invalid_index_prefix).await, n);
    assert_eq!(mongo_count(c, INVALID_COLLECTION).await, n);
    let index = ecom_sink::doc::daily_index(&c.invalid_index_prefix, JAN_1_2026_MS);
    let d = es_get(c.es_url.expose(), &index, "ecom.events.raw/0/0").await.expect("dead letter 0 in Elasticsearch");
    assert_eq!(
        (d["reason"].as_str(), d["raw"].as_str(), d["raw_size_bytes"].as_i64()),
        (Some("LATE"), Some("AQID"), Some(3))
    );
    let m = mongo_get(c, INVALID_COLLECTION, "ecom.events.raw/0/0").await.expect("dead letter 0 in MongoDB");
    assert_eq!(m.get_str("detail").unwrap(), "event 0 is late");
}

async fn es_count(url: &str, prefix: &str) -> u64 {
    let http = reqwest::Client::new();
    http.post(format!("{url}/{prefix}-*/_refresh")).send().await.unwrap();
    let v: serde_json::Value = http.get(format!("{url}/{prefix}-*/_count")).send().await.unwrap().json().await.unwrap();
    v["count"].as_u64().unwrap_or(0)
}

/// The document with `id` in exactly the daily index `index`, or None.
async fn es_get(url: &str, index: &str, id: &str) -> Option<serde_json::Value> {
    let v: serde_json::Value =
        reqwest::get(format!("{url}/{index}/_doc/{}", id.replace('/', "%2F"))).await.unwrap().json().await.unwrap();
    (v["found"] == true).then(|| v["_source"].clone())
}

async fn db(c: &SinkConfig) -> mongodb::Database {
    mongodb::Client::with_uri_str(c.mongo_url.expose()).await.unwrap().database(&c.mongo_db)
}

async fn mongo_count(c: &SinkConfig, collection: &str) -> u64 {
    db(c).await.collection::<Document>(collection).count_documents(doc! {}).await.unwrap()
}

async fn mongo_get(c: &SinkConfig, collection: &str, id: &str) -> Option<Document> {
    db(c).await.collection::<Document>(collection).find_one(doc! {"_id": id}).await.unwrap()
}

/// Every kind is stored once per id in both stores, sessions and windows as expected and in
/// the daily index of their own time.
async fn assert_stored(c: &SinkConfig, events: usize, sessions: &[Session], windows: &[WindowMetrics]) {
    assert_eq!(es_count(c.es_url.expose(), &c.index_prefix).await, events as u64);
    assert_eq!(mongo_count(c, EVENTS_COLLECTION).await, events as u64);
    assert_eq!(es_count(c.es_url.expose(), &c.sessions_index_prefix).await, sessions.len() as u64);
    assert_eq!(mongo_count(c, SESSIONS_COLLECTION).await, sessions.len() as u64);
    assert_eq!(es_count(c.es_url.expose(), &c.metrics_index_prefix).await, windows.len() as u64);
    assert_eq!(mongo_count(c, METRICS_COLLECTION).await, windows.len() as u64);
    for s in sessions {
        let index = ecom_sink::doc::daily_index(&c.sessions_index_prefix, s.start_ms);
        let d =
            es_get(c.es_url.expose(), &index, &s.id).await.unwrap_or_else(|| panic!("session {} not in {index}", s.id));
        assert_eq!((d["session_id"].as_str(), d["purchased"].as_bool()), (Some(&*s.session_id), Some(s.purchased)));
        assert_eq!(d["events"], s.events);
        let m =
            mongo_get(c, SESSIONS_COLLECTION, &s.id).await.unwrap_or_else(|| panic!("session {} not in MongoDB", s.id));
        assert_eq!(m.get_str("session_id").unwrap(), s.session_id);
        assert_eq!(m.get_i64("start_ms").unwrap(), s.start_ms);
        assert_eq!(m.get_i64("events").unwrap(), i64::from(s.events));
    }
    for w in windows {
        let index = ecom_sink::doc::daily_index(&c.metrics_index_prefix, w.window_start_ms);
        let d =
            es_get(c.es_url.expose(), &index, &w.id).await.unwrap_or_else(|| panic!("window {} not in {index}", w.id));
        assert_eq!(d["views"], w.views);
        let m =
            mongo_get(c, METRICS_COLLECTION, &w.id).await.unwrap_or_else(|| panic!("window {} not in MongoDB", w.id));
        assert_eq!(m.get_i64("views").unwrap(), w.views);
        assert_eq!(m.get_str("mechanism").unwrap(), "discrete_laplace");
    }
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn the_refresh_interval_reaches_the_templates_and_the_indices_that_exist() {
    let mut c = cfg("refresh");
    c.es_refresh_interval = Duration::from_millis(250);
    let stores = Stores::connect(&c).await.unwrap();
    stores.ensure_schema().await.unwrap();
    stores.write(&Batch { events: (0..3).map(event).collect(), ..Default::default() }).await.unwrap();
    let url = c.es_url.expose().to_string();
    let setting = |index: String| {
        let url = url.clone();
        async move {
            let v: serde_json::Value =
                reqwest::get(format!("{url}/{index}/_settings")).await.unwrap().json().await.unwrap();
            let obj = v.as_object().unwrap_or_else(|| panic!("no settings for {index}: {v}"));
            assert!(!obj.is_empty(), "no index matches {index}");
            obj.values()
                .map(|i| i["settings"]["index"]["refresh_interval"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert!(setting(format!("{}-*", c.index_prefix)).await.iter().all(|r| r == "250ms"));
    // A sink started later with another interval changes the indices already there and the
    // templates of those still to come.
    c.es_refresh_interval = Duration::from_millis(700);
    Stores::connect(&c).await.unwrap().ensure_schema().await.unwrap();
    assert!(setting(format!("{}-*", c.index_prefix)).await.iter().all(|r| r == "700ms"));
    let t: serde_json::Value =
        reqwest::get(format!("{url}/_index_template/{}", c.sessions_index_prefix)).await.unwrap().json().await.unwrap();
    assert_eq!(t["index_templates"][0]["index_template"]["template"]["settings"]["index"]["refresh_interval"], "700ms");
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn writes_are_idempotent_by_id_in_both_stores() {
    let c = cfg("stores");
    let stores = Stores::connect(&c).await.unwrap();
    stores.ensure_schema().await.unwrap();
    stores.ensure_schema().await.unwrap(); // templates install idempotently
    let batch = Batch {
        events: (0..50).map(event).collect(),
        sessions: (0..5).map(session).collect(),
        metrics: (0..8).map(metrics).collect(),
        invalid: (0..4).map(invalid).collect(),
        ..Default::default()
    };
    stores.write(&batch).await.unwrap();
    // A replay overwrites: the same ids with new content, and one id twice in one batch (the
    // last copy wins, as sequential upserts would).
    let mut replay = Batch {
        events: batch.events[..20].to_vec(),
        sessions: batch.sessions[..3].iter().map(|s| Session { events: 99, ..s.clone() }).collect(),
        metrics: batch.metrics[..4].to_vec(),
        invalid: batch.invalid[..2].to_vec(),
        ..Default::default()
    };
    replay.metrics[0].views = 77;
    replay.metrics.push(WindowMetrics { views: 55, ..batch.metrics[0].clone() });
    stores.write(&replay).await.unwrap();
    let mut sessions = batch.sessions.clone();
    sessions[..3].clone_from_slice(&replay.sessions);
    let mut windows = batch.metrics.clone();
    windows[0].views = 55;
    assert_stored(&c, 50, &sessions, &windows).await;
    assert_invalid_stored(&c, 4).await;
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn sink_moves_kafka_records_into_both_stores_and_dead_letters_garbage() {
    let c = cfg("run");
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &c.brokers).create().unwrap();
    let send = |topic: &str, key: String, value: Vec<u8>| {
        let (producer, topic) = (producer.clone(), topic.to_string());
        async move {
            producer.send(FutureRecord::to(&topic).key(&key).payload(&value), Duration::from_secs(10)).await.unwrap();
        }
    };
    for i in 0..300 {
        send(&c.topic, "k".into(), event(i).encode_to_vec()).await;
    }
    for i in 0..6 {
        let s = session(i);
        send(&c.sessions_topic, s.session_id.clone(), s.encode_to_vec()).await;
    }
    for i in 0..9 {
        let m = metrics(i);
        send(&c.metrics_topic, m.id.clone(), m.encode_to_vec()).await;
    }
    for i in 0..5 {
        send(&c.invalid_topic, "k".into(), invalid(i).encode_to_vec()).await;
    }
    // Two model versions' live quality; one window without buyers has no ROC AUC.
    let quality = [
        ModelQuality {
            id: format!("{JAN_1_2026_MS}/v1"),
            window_start_ms: JAN_1_2026_MS,
            window_end_ms: JAN_1_2026_MS + 600_000,
            model_version: "v1".into(),
            sessions: 40,
            purchases: 3,
            roc_auc: Some(0.81),
            calibration: vec![CalibrationBin {
                lower: 0.0,
                upper: 0.1,
                sessions: 40,
                purchases: 3,
                mean_predicted: 0.07,
            }],
            ..Default::default()
        },
        ModelQuality {
            id: format!("{JAN_1_2026_MS}/v2"),
            model_version: "v2".into(),
            sessions: 5,
            ..Default::default()
        },
    ];
    for q in &quality {
        send(&c.quality_topic, q.id.clone(), q.encode_to_vec()).await;
    }
    // A replayed session: written again, stored once.
    send(&c.sessions_topic, "s0".into(), session(0).encode_to_vec()).await;
    // Records that are not what their topic carries: each must land in the dead letter with
    // its topic and reason, not vanish. A session without its id is refused too.
    send(&c.topic, "k".into(), vec![0x0f, 1, 2]).await;
    send(&c.sessions_topic, "k".into(), Session { session_id: "no-id".into(), ..Default::default() }.encode_to_vec())
        .await;
    send(&c.metrics_topic, "k".into(), vec![0x0f, 1, 2]).await;

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(ecom_sink::run(c.clone(), async move {
        let _ = rx.await;
    }));
    let deadline = Instant::now() + Duration::from_secs(60);
    while mongo_count(&c, EVENTS_COLLECTION).await < 300
        || es_count(c.es_url.expose(), &c.index_prefix).await < 300
        || mongo_count(&c, SESSIONS_COLLECTION).await < 6
        || es_count(c.es_url.expose(), &c.sessions_index_prefix).await < 6
        || mongo_count(&c, METRICS_COLLECTION).await < 9
        || es_count(c.es_url.expose(), &c.metrics_index_prefix).await < 9
        || mongo_count(&c, INVALID_COLLECTION).await < 5
        || es_count(c.es_url.expose(), &c.invalid_index_prefix).await < 5
        || mongo_count(&c, DEADLETTER_COLLECTION).await < 3
        || mongo_count(&c, QUALITY_COLLECTION).await < 2
        || es_count(c.es_url.expose(), &c.quality_index_prefix).await < 2
    {
        assert!(!run.is_finished(), "the sink stopped early");
        assert!(Instant::now() < deadline, "sink did not write every record within 60 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), run).await.unwrap().unwrap().unwrap();
    let (sessions, windows): (Vec<_>, Vec<_>) = ((0..6).map(session).collect(), (0..9).map(metrics).collect());
    assert_stored(&c, 300, &sessions, &windows).await;
    assert_invalid_stored(&c, 5).await;
    for q in &quality {
        let index = ecom_sink::doc::daily_index(&c.quality_index_prefix, q.window_start_ms);
        let d = es_get(c.es_url.expose(), &index, &q.id).await.unwrap_or_else(|| panic!("{} not in {index}", q.id));
        assert_eq!((d["sessions"].as_i64(), d["roc_auc"].as_f64()), (Some(q.sessions), q.roc_auc));
        assert_eq!(d["calibration"].as_array().map(Vec::len), Some(q.calibration.len()));
        let m = mongo_get(&c, QUALITY_COLLECTION, &q.id).await.unwrap_or_else(|| panic!("{} not in MongoDB", q.id));
        assert_eq!(m.get_str("model_version").unwrap(), q.model_version);
    }

    let dead = db(&c).await.collection::<Document>(DEADLETTER_COLLECTION);
    assert_eq!(dead.count_documents(doc! {}).await.unwrap(), 3);
    // ...and on the dead-letter topic, as JSON with the same ids.
    let letters = read_topic(&c.brokers, &c.deadletter_topic, 3).await;
    let mut kinds: Vec<String> = letters.iter().map(|(_, v)| v["kind"].as_str().unwrap().to_string()).collect();
    kinds.sort();
    assert_eq!(kinds, ["event", "session", "window_metrics"]);
    assert!(
        letters.iter().all(|(k, v)| k.ends_with(&format!("/{}", v["offset"])) && v["reason"].is_string()),
        "{letters:?}"
    );
    for (topic, kind, reason) in [
        (&c.topic, "event", "not an ecom.v1.EnrichedEvent: "),
        (&c.sessions_topic, "session", "session without id"),
        (&c.metrics_topic, "window_metrics", "not an ecom.v1.WindowMetrics: "),
    ] {
        let d = dead
            .find_one(doc! {"topic": topic})
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no dead letter from {topic}"));
        assert_eq!(d.get_str("kind").unwrap(), kind);
        assert!(d.get_str("reason").unwrap().starts_with(reason), "{d}");
        let offset = d.get_i64("offset").unwrap();
        assert_eq!(d.get_str("_id").unwrap(), format!("{topic}/{}/{offset}", d.get_i32("partition").unwrap()));
        assert!(!d.get_binary_generic("raw").unwrap().is_empty());
    }
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn documents_a_store_refuses_for_good_go_to_the_dead_letter_and_the_rest_is_stored() {
    let c = cfg("refused");
    let stores = Stores::connect(&c).await.unwrap();
    stores.ensure_schema().await.unwrap();
    let http = reqwest::Client::new();
    let day = |d: i64| JAN_1_2026_MS + d * 86_400_000;
    let on_day = |i: usize, d: i64| {
        let mut e = event(i);
        e.event.as_mut().unwrap().event_time_ms = day(d) + i as i64;
        e
    };
    // Day 1's index is closed (a permanent 400 index_closed_exception); day 2's maps `kind` as
    // a number, so a document saying "product_view" cannot be parsed (400); day 3 is fine.
    let closed = ecom_sink::doc::daily_index(&c.index_prefix, day(1));
    let strict = ecom_sink::doc::daily_index(&c.index_prefix, day(2));
    http.put(format!("{}/{closed}", c.es_url)).send().await.unwrap();
    let r = http.post(format!("{}/{closed}/_close", c.es_url)).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let r = http
        .put(format!("{}/{strict}", c.es_url))
        .json(&serde_json::json!({"mappings": {"properties": {"kind": {"type": "long"}}}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    let mut batch = Batch::default();
    for (i, d) in [(0, 1), (1, 1), (2, 2), (3, 3), (4, 3), (5, 3)] {
        batch.push_from(ecom_sink::record::Record::Event(on_day(i, d)), &c.topic, 0, 100 + i as i64);
    }
    let rejected = stores.write(&batch).await.expect("refused documents do not fail the write");
    let mut refused: Vec<(&str, &str)> = rejected.iter().map(|r| (r.id.as_str(), r.store)).collect();
    refused.sort();
    assert_eq!(
        refused,
        [("evt-00000", "elasticsearch"), ("evt-00001", "elasticsearch"), ("evt-00002", "elasticsearch")]
    );
    assert!(rejected[..2].iter().all(|r| r.reason.contains("index_closed_exception")), "{rejected:?}");
    assert!(rejected.iter().any(|r| r.reason.starts_with("400 document_parsing_exception")), "{rejected:?}");
    // The rest is stored: day 3 in Elasticsearch, everything in MongoDB (which took them all).
    let day3 = ecom_sink::doc::daily_index(&c.index_prefix, day(3));
    http.post(format!("{}/{day3}/_refresh", c.es_url)).send().await.unwrap();
    let v: serde_json::Value =
        http.get(format!("{}/{day3}/_count", c.es_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["count"], 3);
    assert_eq!(mongo_count(&c, EVENTS_COLLECTION).await, 6);
    // Each refused document is in the dead letter with the store's reason and where it was read.
    let dead = db(&c).await.collection::<Document>(DEADLETTER_COLLECTION);
    assert_eq!(dead.count_documents(doc! {"store": "elasticsearch"}).await.unwrap(), 3);
    let d = dead.find_one(doc! {"record_id": "evt-00002"}).await.unwrap().expect("dead letter of evt-00002");
    assert_eq!(
        (d.get_str("topic").unwrap(), d.get_i32("partition").unwrap(), d.get_i64("offset").unwrap()),
        (c.topic.as_str(), 0, 102)
    );
    assert_eq!(d.get_str("target").unwrap(), strict);
    assert!(d.get_str("document").unwrap().contains("\"event_id\":\"evt-00002\""));
    // Written again (a replay), nothing is duplicated.
    stores.write(&batch).await.unwrap();
    assert_eq!(dead.count_documents(doc! {}).await.unwrap(), 3);
    let _ = http.delete(format!("{}/{}-*", c.es_url, c.index_prefix)).send().await;
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn expire_removes_old_days_and_documents_and_keeps_the_rest() {
    let c = cfg("expire");
    let stores = Stores::connect(&c).await.unwrap();
    stores.ensure_schema().await.unwrap();
    let day = 86_400_000;
    let old_time = JAN_1_2026_MS - 40 * day;
    let at = |e: EnrichedEvent, t: i64| {
        let mut e = e;
        e.event.as_mut().unwrap().event_time_ms = t;
        e
    };
    let batch = Batch {
        events: (0..10).map(|i| at(event(i), if i < 4 { old_time } else { JAN_1_2026_MS })).collect(),
        sessions: vec![Session { start_ms: old_time, ..session(0) }, session(1)],
        ..Default::default()
    };
    stores.write(&batch).await.unwrap();
    let cutoff = JAN_1_2026_MS - 10 * day;
    let dry = stores.expire(cutoff, true).await.unwrap();
    let old_day = |prefix: &str| ecom_sink::doc::daily_index(prefix, old_time);
    assert_eq!(dry.indices, vec![old_day(&c.index_prefix), old_day(&c.sessions_index_prefix)]);
    assert_eq!(dry.documents.iter().map(|(_, n)| n).sum::<u64>(), 5, "{dry:?}");
    assert_eq!(mongo_count(&c, "events").await, 10, "a dry run removed documents");

    let done = stores.expire(cutoff, false).await.unwrap();
    assert_eq!(done, dry);
    assert_eq!(es_count(c.es_url.expose(), &c.index_prefix).await, 6);
    assert_eq!(es_count(c.es_url.expose(), &c.sessions_index_prefix).await, 1);
    assert_eq!(mongo_count(&c, "events").await, 6);
    assert_eq!(mongo_count(&c, "sessions").await, 1);
    // Nothing left to expire.
    let again = stores.expire(cutoff, false).await.unwrap();
    assert!(again.indices.is_empty() && again.documents.iter().all(|(_, n)| *n == 0), "{again:?}");
    db(&c).await.drop().await.unwrap();
}

/// The sink's stores against a MongoDB that checks passwords and speaks only TLS: the right
/// user over TLS with the CA stores every document; a wrong password, an untrusted certificate
/// and a client without credentials are refused, and no error shows the password.
#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn a_mongodb_with_a_password_and_tls_is_written_with_them_and_refuses_without() {
    let password = unique("mongo-pw");
    let server = SecureMongo::start(&password);
    let mut c = cfg("secure");
    c.mongo_url = server.url(Some(&password), true);
    let stores = Stores::connect(&c).await.unwrap();
    stores.ensure_schema().await.unwrap();
    let batch = Batch { events: (0..30).map(event).collect(), ..Default::default() };
    assert!(stores.write(&batch).await.unwrap().is_empty());
    let counted = mongodb::Client::with_uri_str(c.mongo_url.expose())
        .await
        .unwrap()
        .database(&c.mongo_db)
        .collection::<Document>(EVENTS_COLLECTION)
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(counted, 30);

    let refused = |url: ecom_core::secret::SecretUrl, why: &'static str| {
        let mut c = c.clone();
        let password = password.clone();
        async move {
            c.mongo_url = url;
            let outcome = match Stores::connect(&c).await {
                Ok(stores) => stores.write(&Batch { events: vec![event(1)], ..Default::default() }).await.map(|_| ()),
                Err(e) => Err(e),
            };
            let err = format!("{:#}", outcome.expect_err(why));
            assert!(!err.contains(&password), "{why}: the password in {err}");
            err
        }
    };
    let wrong = refused(server.url(Some("not-the-password"), true), "a wrong password").await;
    assert!(wrong.contains("Authentication failed"), "{wrong}");
    let untrusted = refused(server.url(Some(&password), false), "an untrusted certificate").await;
    assert!(untrusted.to_lowercase().contains("certificate"), "{untrusted}");
    let anonymous = ecom_core::secret::SecretUrl::new(&server.url(None, true).without_credentials(), None);
    let anonymous = refused(anonymous, "no credentials").await;
    assert!(anonymous.contains("authenticat") || anonymous.contains("Unauthorized"), "{anonymous}");
}
