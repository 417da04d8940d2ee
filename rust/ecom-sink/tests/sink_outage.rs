//! Elasticsearch away, for real: the sink's Elasticsearch URL is a local port where a plain TCP
//! forwarder to the stack's Elasticsearch listens only while the test lets it (closing it drops
//! every open connection). A sink started while Elasticsearch is away waits, says so on /health
//! (503), and writes everything once it answers; a sink whose Elasticsearch goes away for longer
//! than its consumer's max.poll.interval.ms stays in its group (partitions paused, consumer
//! polled) and writes everything, once, when it is back.
use ecom_proto::v1::{EnrichedEvent, Event};
use ecom_sink::SinkConfig;
use prost::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::time::{Duration, Instant};

mod common;
use common::env;

/// Forwards every connection on `port` to `target` until aborted; aborting it closes the
/// listener and every connection it forwards.
async fn forward(port: u16, target: String) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else { return };
        let target = target.clone();
        conns.spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

async fn es_count(es: &str, prefix: &str) -> u64 {
    let http = reqwest::Client::new();
    let _ = http.post(format!("{es}/{prefix}-*/_refresh")).send().await;
    let v: serde_json::Value =
        http.get(format!("{es}/{prefix}-*/_count?allow_no_indices=true")).send().await.unwrap().json().await.unwrap();
    v["count"].as_u64().unwrap_or(0)
}

async fn produce(brokers: &str, topic: &str, ids: std::ops::Range<i64>) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    for i in ids {
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
            .send(FutureRecord::to(topic).key("k").payload(&e.encode_to_vec()), Duration::from_secs(10))
            .await
            .unwrap();
    }
}

/// Waits until `prefix-*` holds `n` documents; panics after `secs`.
async fn wait_for(es: &str, prefix: &str, n: u64, secs: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let have = es_count(es, prefix).await;
        if have == n {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {have} of {n} documents after {secs} s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn configs(tag: &str, es_port: u16, metrics_port: u16, max_poll: Duration) -> SinkConfig {
    SinkConfig {
        es_url: ecom_core::secret::SecretUrl::new(&format!("http://127.0.0.1:{es_port}"), None),
        metrics_addr: format!("127.0.0.1:{metrics_port}").parse().unwrap(),
        max_poll_interval: max_poll,
        ..common::scratch(tag)
    }
}

/// A port nothing listens on (bound, then closed again).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn an_outage_longer_than_the_poll_interval_keeps_the_sink_in_its_group_and_loses_nothing() {
    let es = env("ES_URL", "http://127.0.0.1:9200");
    let target = es.trim_start_matches("http://").trim_end_matches('/').to_string();
    let port = free_port();
    let c = configs("long-outage", port, 19467, Duration::from_secs(8));
    let fwd = tokio::spawn(forward(port, target.clone()));
    produce(&c.brokers, &c.topic, 0..100).await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(ecom_sink::run(c.clone(), async move {
        let _ = rx.await;
    }));
    wait_for(&es, &c.index_prefix, 100, 60, "before the outage").await;

    // Elasticsearch goes away for 20 s, over twice the consumer's max.poll.interval.ms.
    fwd.abort();
    let _ = fwd.await;
    produce(&c.brokers, &c.topic, 100..200).await;
    let url = format!("http://{}/health", c.metrics_addr);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (status, text) = health(&url).await;
    assert_eq!(status, 503, "{text}");
    assert!(!run.is_finished(), "the sink stopped during the outage: {:?}", run.await);
    // Still a member of its group: it kept polling with its partitions paused. (A consumer
    // that stops polling is dropped after max.poll.interval.ms and its partitions go to others.)
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let admin: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &c.brokers).create().unwrap();
    let groups = admin.fetch_group_list(Some(&c.group_id), Duration::from_secs(10)).unwrap();
    let members = groups.groups().iter().map(|g| g.members().len()).sum::<usize>();
    assert_eq!(members, 1, "members of the sink's group {} during the outage", c.group_id);

    let fwd = tokio::spawn(forward(port, target));
    wait_for(&es, &c.index_prefix, 200, 60, "after the outage").await;
    assert_eq!(health(&url).await.0, 200);
    assert!(!run.is_finished(), "the sink stopped after the outage");
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), run).await.unwrap().unwrap().unwrap();
    // Every record's offset is committed by the group the sink never left (a replay would
    // overwrite its documents, so the count alone cannot tell: ask the group).
    let group: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", &c.brokers).set("group.id", &c.group_id).create().unwrap();
    let md = group.fetch_metadata(Some(&c.topic), Duration::from_secs(10)).unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition(&c.topic, p.id());
    }
    let committed: i64 = group
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| if let rdkafka::Offset::Offset(o) = e.offset() { o } else { 0 })
        .sum();
    assert_eq!(committed, 200, "committed offsets of the sink's group");
    fwd.abort();
    let _ = reqwest::Client::new().delete(format!("{es}/{}-*", c.index_prefix)).send().await;
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
    let es = env("ES_URL", "http://127.0.0.1:9200");
    let port = free_port();
    let c = configs("outage", port, 19465, Duration::from_secs(300));
    produce(&c.brokers, &c.topic, 0..200).await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(ecom_sink::run(c.clone(), async move {
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
    let fwd = tokio::spawn(forward(port, target));
    wait_for(&es, &c.index_prefix, 200, 60, "after Elasticsearch came back").await;
    assert_eq!(health(&url).await.0, 200);
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), run).await.unwrap().unwrap().unwrap();
    fwd.abort();
    let _ = reqwest::Client::new().delete(format!("{es}/{}-*", c.index_prefix)).send().await;
}
