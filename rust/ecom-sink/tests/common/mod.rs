//! What the sink's integration tests share: a config on scratch names, against the local stack.
use ecom_core::secret::SecretUrl;
use ecom_sink::SinkConfig;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn env(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.into())
}

/// A config for the local stack (KAFKA_BOOTSTRAP, ES_URL and MONGODB_URL override it) with every
/// topic, index prefix, the group and the database named `ecom-test-<tag>-<stream>-<n>`: unique
/// per call, and no prefix a prefix of another, so the templates' patterns keep apart.
pub fn scratch(tag: &str) -> SinkConfig {
    let n = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let name = |kind: &str| format!("ecom-test-{tag}-{kind}-{n}");
    SinkConfig {
        brokers: env("KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        topic: name("events"),
        group_id: name("group"),
        es_url: SecretUrl::new(&env("ES_URL", "http://127.0.0.1:9200"), None),
        index_prefix: name("events"),
        mongo_url: SecretUrl::new(&env("MONGODB_URL", "mongodb://127.0.0.1:27017"), None),
        mongo_db: name("db").replace('-', "_"),
        batch_size: 100,
        batch_max_delay: Duration::from_millis(100),
        sessions_topic: name("sessions"),
        sessions_index_prefix: name("sessions"),
        metrics_topic: name("metrics"),
        metrics_index_prefix: name("metrics"),
        invalid_topic: name("invalid"),
        invalid_index_prefix: name("invalid"),
        quality_topic: name("quality"),
        quality_index_prefix: name("quality"),
        deadletter_topic: name("deadletter"),
        ..Default::default()
    }
}
