//! The sink started while Elasticsearch cannot be reached: it waits, says so on /health (503),
//! and once Elasticsearch answers it writes everything, with nothing lost. The outage is real:
//! the sink's Elasticsearch URL is a local port where nothing listens until the test opens a
//! plain TCP forwarder to the stack's Elasticsearch there. Its own binary, because the sink
//! installs the process's one Prometheus recorder.
use ecom_proto::v1::{EnrichedEvent, Event};
use ecom_sink::{AggregatesConfig, DeliveryMode, SinkConfig};
use prost::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn env(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.into())
}

/// Forwards every connection on `listener` to `target` until the test ends.
async fn forward(listener: tokio::net::TcpListener, target: String) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else { return };
        let target = target.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

async fn health(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn a_sink_started_while_elasticsearch_is_away_waits_and_then_writes_everything() {
    let n = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let es = env("ES_URL", "http://127.0.0.1:9200");
    // A free port, closed again: nothing answers there until the forwarder takes it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let c = SinkConfig {
        brokers: env("KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        topic: format!("ecom-test-outage-events-{n}"),
        group_id: format!("ecom-test-outage-{n}"),
        es_url: format!("http://127.0.0.1:{port}"),
        index_prefix: format!("ecom-test-outage-events-{n}"),
        mongo_url: env("MONGODB_URL", "mongodb://127.0.0.1:27017"),
        mongo_db: format!("ecom_test_outage_{n}"),
        batch_max: 100,
        batch_wait: Duration::from_millis(100),
        metrics_addr: "127.0.0.1:19465".parse().unwrap(),
        delivery: DeliveryMode::AtLeastOnce,
    };
    let a = AggregatesConfig {
        sessions_topic: format!("ecom-test-outage-sessions-{n}"),
        sessions_index_prefix: format!("ecom-test-outage-sessions-{n}"),
        metrics_topic: format!("ecom-test-outage-metrics-{n}"),
        metrics_index_prefix: format!("ecom-test-outage-metrics-{n}"),
        invalid_topic: format!("ecom-test-outage-invalid-{n}"),
        invalid_index_prefix: format!("ecom-test-outage-invalid-{n}"),
    };
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &c.brokers).create().unwrap();
    for i in 0..200 {
        let e = EnrichedEvent {
            event: Some(Event {
                event_id: format!("evt-{i:05}"),
                event_time_ms: 1_767_225_600_000 + i,
                kind: 3,
                ..Default::default()
            }),
            ..Default::default()
        };
        producer
            .send(FutureRecord::to(&c.topic).key("k").payload(&e.encode_to_vec()), Duration::from_secs(10))
            .await
            .unwrap();
    }

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(ecom_sink::run(c.clone(), a, async move {
        let _ = rx.await;
    }));
    let url = format!("http://{}/health", c.metrics_addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, text) = loop {
        let h = health(&url).await;
        if h.0 == 503 || Instant::now() > deadline {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("Elasticsearch") && text.contains("does not answer"), "{text}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!run.is_finished(), "the sink gave up instead of waiting");

    // Elasticsearch comes back.
    let target = es.trim_start_matches("http://").trim_end_matches('/').to_string();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let fwd = tokio::spawn(forward(listener, target));
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let _ = http.post(format!("{es}/{}-*/_refresh", c.index_prefix)).send().await;
        let v: serde_json::Value = http
            .get(format!("{es}/{}-*/_count?allow_no_indices=true", c.index_prefix))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["count"] == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sink wrote {} of 200 within 60 s of Elasticsearch's return",
            v["count"]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(health(&url).await.0, 200);
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), run).await.unwrap().unwrap().unwrap();
    fwd.abort();
    let _ = http.delete(format!("{es}/{}-*", c.index_prefix)).send().await;
}
