//! Kafka over TLS: the local stack's broker has a TLS listener (127.0.0.1:9094, dev/certs'
//! server certificate). `ecom generate` given a properties file ($ECOM_KAFKA_PROPERTIES_FILE:
//! security.protocol=ssl, the CA) writes through it; a plaintext client gets no answer there.
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use std::process::Command;
use std::time::Duration;

const TLS: &str = "127.0.0.1:9094";

fn end_offsets(brokers: &str, topic: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let parts: Vec<i32> = md.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    parts.iter().map(|&p| c.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap().1).sum()
}

#[test]
#[ignore = "needs the local stack (dev/up)"]
fn the_tls_listener_serves_a_client_with_the_properties_file_and_refuses_plaintext() {
    let home = std::env::var("ECOM_HOME").expect("run through dev/test (ECOM_HOME)");
    let dir = std::env::temp_dir().join(format!("ecom-kafka-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let props = dir.join("kafka.properties");
    std::fs::write(
        &props,
        format!("# TLS to the local broker\nsecurity.protocol=ssl\nssl.ca.location={home}/tls/ca.pem\n"),
    )
    .unwrap();
    let topic = format!("ecom.tls-test-{}", std::process::id());

    // Plaintext against the TLS port: no metadata within the timeout.
    let plain: BaseConsumer = ClientConfig::new().set("bootstrap.servers", TLS).create().unwrap();
    assert!(plain.fetch_metadata(None, Duration::from_secs(5)).is_err(), "a plaintext client was answered on TLS");

    let out = Command::new(env!("CARGO_BIN_EXE_ecom"))
        .args([
            "generate",
            "--events",
            "300",
            "--seed",
            "4",
            "--quiet",
            "--bootstrap-servers",
            TLS,
            "--raw-topic",
            &topic,
        ])
        .args(["--catalog-topic", &format!("{topic}.catalog"), "--truth-topic", &format!("{topic}.truth")])
        .env("ECOM_KAFKA_PROPERTIES_FILE", &props)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Read back over plaintext: every record is there.
    assert_eq!(end_offsets("127.0.0.1:9092", &topic), 300);

    // A properties file that is not one is refused by name, before any connection.
    std::fs::write(&props, "security.protocol ssl\n").unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_ecom"))
        .args(["generate", "--events", "1", "--quiet", "--bootstrap-servers", TLS, "--raw-topic", &topic])
        .env("ECOM_KAFKA_PROPERTIES_FILE", &props)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("ECOM_KAFKA_PROPERTIES_FILE") && err.contains("line 1"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
