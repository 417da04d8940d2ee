//! ecom-sink: consumes the Flink job's five output topics (read_committed) and writes every
//! record to Elasticsearch and MongoDB, keyed by the record's id so a replay overwrites instead
//! of duplicating:
//!
//! | topic | message | Elasticsearch (daily, UTC) | MongoDB | id |
//! | --- | --- | --- | --- | --- |
//! | ecom.events.enriched | EnrichedEvent | ecom-events-YYYY.MM.DD by event_time_ms | events | event.event_id |
//! | ecom.sessions | Session | ecom-sessions-YYYY.MM.DD by start_ms | sessions | id |
//! | ecom.metrics | WindowMetrics | ecom-metrics-YYYY.MM.DD by window_start_ms | metrics | id |
//! | ecom.events.invalid | InvalidEvent | ecom-invalid-YYYY.MM.DD by rejected_at_ms | invalid | source topic/partition/offset |
//! | ecom.quality | ModelQuality | ecom-quality-YYYY.MM.DD by window_start_ms | quality | id |
//!
//! The job's dead letters are indexed so that the reconciliation (every record read is
//! enriched or rejected with a reason) can be counted from the stores; ecom.events.invalid
//! stays the dead-letter destination of record.
//!
//! Records that do not decode (or lack their id) go to MongoDB `sink_deadletter` with their
//! kind, topic, partition, offset and reason. Delivery is at-least-once: Kafka offsets are
//! committed only after both stores acknowledged the batch.
//! Shape: config (here) -> record decoder (record.rs) -> doc encoder (doc.rs) -> store writers
//! (stores/) -> delivery rules (driver/) -> the batching loop ([`run`]).
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![deny(unused_must_use)]

pub mod free_text;
pub mod kafka;
pub use free_text::FreeText;
pub mod doc;
mod driver;
pub mod record;
pub mod stores;

use anyhow::{bail, Context};
use ecom_core::secret::SecretUrl;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::Message;
use record::{Batch, DeadLetter, Kind};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Everything `ecom sink` needs: where each of the job's five streams is read from and
/// indexed under, the stores, and the batching. Delivery is at-least-once: offsets are
/// committed after both stores acknowledged the batch, and the stores are idempotent by record
/// id, which turns redelivery into overwrites. [`Default`] is the local stack with the job's
/// topics and the CLI's defaults.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Topic of enriched events (ecom.events.enriched).
    pub topic: String,
    /// Consumer group (one for all five topics).
    pub group_id: String,
    /// Elasticsearch base URL (basic auth from its credentials).
    pub es_url: SecretUrl,
    /// Index prefix of events; they go to `<prefix>-YYYY.MM.DD` by event time.
    pub index_prefix: String,
    /// MongoDB URL.
    pub mongo_url: SecretUrl,
    /// MongoDB database (collections `events`, `sessions`, `metrics`, `invalid`, `quality`,
    /// `sink_deadletter`).
    pub mongo_db: String,
    /// Largest batch written at once (records of all kinds).
    pub batch_size: usize,
    /// Longest a partial batch waits before it is written.
    pub batch_max_delay: Duration,
    /// Listen address for /health and /metrics.
    pub metrics_addr: SocketAddr,
    /// Kafka's max.poll.interval.ms: how long the consumer may go without polling before the
    /// group drops it. The sink keeps polling with its partitions paused while a store is away,
    /// so an outage does not count against it.
    pub max_poll_interval: Duration,
    /// Kafka's group.instance.id (static membership), unique per running sink; `None` joins as
    /// a dynamic member. A dynamic member's session timeout is [`DYNAMIC_SESSION_TIMEOUT`], so
    /// a killed sink's partitions move on soon; a static one's is 45 s (a sink restarting under
    /// the same id gets them back at once), but after its session timed out (a broker frozen
    /// past it) a static member can stay out of the group: librdkafka issue 3437.
    pub instance_id: Option<String>,
    /// What the stores keep of the free-text fields (search_query, referrer, user_agent).
    pub free_text: FreeText,
    /// How often Elasticsearch makes new writes searchable (`index.refresh_interval`) in the
    /// sink's indices: set in their templates and on the ones that exist when the sink starts.
    /// Shorter means fresher searches and more segments to merge.
    pub es_refresh_interval: Duration,
    /// Topic of closed sessions (ecom.sessions).
    pub sessions_topic: String,
    /// Index prefix of sessions; they go to `<prefix>-YYYY.MM.DD` by start_ms.
    pub sessions_index_prefix: String,
    /// Topic of per-minute DP window metrics (ecom.metrics).
    pub metrics_topic: String,
    /// Index prefix of window metrics; they go to `<prefix>-YYYY.MM.DD` by window_start_ms.
    pub metrics_index_prefix: String,
    /// Topic of the records the job rejected (ecom.events.invalid).
    pub invalid_topic: String,
    /// Index prefix of rejected records; they go to `<prefix>-YYYY.MM.DD` by rejected_at_ms.
    pub invalid_index_prefix: String,
    /// Topic of each model version's live quality per window (ecom.quality).
    pub quality_topic: String,
    /// Index prefix of live quality; it goes to `<prefix>-YYYY.MM.DD` by window_start_ms.
    pub quality_index_prefix: String,
    /// Topic the sink's own dead letters go to (JSON, key = the dead letter's id), besides
    /// MongoDB's `sink_deadletter`: records it could not decode and documents a store refused.
    pub deadletter_topic: String,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self::with_stem("ecom")
    }
}

impl SinkConfig {
    /// The defaults with every index prefix `<stem>-<stream>` (`ecom-events`, `ecom-sessions`, …).
    pub fn with_stem(stem: &str) -> Self {
        use ecom_core::topics;
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic: topics::ENRICHED.into(),
            group_id: "ecom-sink".into(),
            es_url: SecretUrl::new("http://127.0.0.1:9200", None),
            index_prefix: format!("{stem}-events"),
            mongo_url: SecretUrl::new("mongodb://127.0.0.1:27017", None),
            mongo_db: "ecom".into(),
            batch_size: 1000,
            batch_max_delay: Duration::from_millis(200),
            metrics_addr: ([127, 0, 0, 1], 9464).into(),
            max_poll_interval: Duration::from_secs(300),
            instance_id: None,
            free_text: FreeText::Keep,
            es_refresh_interval: Duration::from_secs(1),
            sessions_topic: topics::SESSIONS.into(),
            sessions_index_prefix: format!("{stem}-sessions"),
            metrics_topic: topics::METRICS.into(),
            metrics_index_prefix: format!("{stem}-metrics"),
            invalid_topic: topics::INVALID.into(),
            invalid_index_prefix: format!("{stem}-invalid"),
            quality_topic: topics::QUALITY.into(),
            quality_index_prefix: format!("{stem}-quality"),
            deadletter_topic: topics::SINK_DEADLETTER.into(),
        }
    }
}

/// Which kind of record each topic carries; two kinds on one topic cannot be told apart.
fn topic_kinds(cfg: &SinkConfig) -> anyhow::Result<HashMap<String, Kind>> {
    let mut kinds = HashMap::new();
    for (topic, kind, flag) in [
        (&cfg.topic, Kind::Event, "--enriched-topic"),
        (&cfg.sessions_topic, Kind::Session, "--sessions-topic"),
        (&cfg.metrics_topic, Kind::WindowMetrics, "--metrics-topic"),
        (&cfg.invalid_topic, Kind::Invalid, "--invalid-topic"),
        (&cfg.quality_topic, Kind::Quality, "--quality-topic"),
    ] {
        if topic.is_empty() {
            bail!("{flag} is empty: name the topic the job writes {} records to", kind.as_str());
        }
        if let Some(other) = kinds.insert(topic.clone(), kind) {
            bail!(
                "topic {topic} is named for both {} and {} records: give {flag} its own topic",
                other.as_str(),
                kind.as_str()
            );
        }
    }
    Ok(kinds)
}

/// The index prefixes must keep apart: equal ones would share one template name (the
/// last installed wins), and `p-*` of one would match the daily indices of a prefix `p-…`.
fn check_prefixes(cfg: &SinkConfig) -> anyhow::Result<()> {
    let named = [
        ("--index-prefix", &cfg.index_prefix),
        ("--sessions-index-prefix", &cfg.sessions_index_prefix),
        ("--metrics-index-prefix", &cfg.metrics_index_prefix),
        ("--invalid-index-prefix", &cfg.invalid_index_prefix),
        ("--quality-index-prefix", &cfg.quality_index_prefix),
    ];
    for (flag, p) in named {
        if p.is_empty() {
            bail!("{flag} is empty: name the index prefix");
        }
        for (other_flag, q) in named {
            if flag != other_flag && (p == q || q.starts_with(&format!("{p}-"))) {
                bail!("{flag} {p} would also match the indices of {other_flag} {q}: give each its own prefix");
            }
        }
    }
    Ok(())
}

/// Runs the sink until `shutdown` resolves; the batch in hand is finished first.
pub async fn run(cfg: SinkConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let kinds = topic_kinds(&cfg)?;
    check_prefixes(&cfg)?;
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let prom = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        // Several sinks in one process (tests): the first one's recorder counts for all.
        tracing::warn!(
            "a metrics recorder is already installed in this process; /metrics shows only this sink's handle"
        );
    }
    let health = Health::default();
    health.set(Some("connecting to Elasticsearch and MongoDB".into()));
    serve_metrics(cfg.metrics_addr, prom, health.clone()).await?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    // A store that is down at start is waited for (unhealthy meanwhile), as during a run.
    let stores = stores::Stores::new(&cfg).await?;
    let mut backoff = Duration::from_millis(500);
    loop {
        match async {
            stores.ping().await?;
            stores.ensure_schema().await
        }
        .await
        {
            Ok(()) => break,
            Err(e) => {
                let why = format!("{e:#}");
                tracing::warn!(error = %why, retry_in_ms = backoff.as_millis() as u64, "the stores are not ready; waiting");
                health.set(Some(why));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop_rx.changed() => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    health.set(None);

    let mut kafka = crate::kafka::client(&cfg.brokers)?;
    let mut session_timeout = DYNAMIC_SESSION_TIMEOUT;
    if let Some(id) = cfg.instance_id.as_deref().filter(|id| !id.is_empty()) {
        kafka.set("group.instance.id", id);
        session_timeout = Duration::from_secs(45);
    }
    let session_timeout = session_timeout.min(cfg.max_poll_interval);
    let consumer: Sink = kafka
        .set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("max.poll.interval.ms", cfg.max_poll_interval.as_millis().to_string())
        .set("session.timeout.ms", session_timeout.as_millis().to_string())
        // The job writes with Kafka transactions: only committed records are real.
        .set("isolation.level", "read_committed")
        // librdkafka's statistics every 5 s: the consumer lag per partition (SinkContext).
        .set("statistics.interval.ms", "5000")
        .create_with_context(SinkContext)
        .with_context(|| format!("creating a Kafka consumer for {}", cfg.brokers))?;
    let topics = [
        cfg.topic.as_str(),
        cfg.sessions_topic.as_str(),
        cfg.metrics_topic.as_str(),
        cfg.invalid_topic.as_str(),
        cfg.quality_topic.as_str(),
    ];
    if topics.contains(&cfg.deadletter_topic.as_str()) || cfg.deadletter_topic.is_empty() {
        bail!("--deadletter-topic {:?} must be a topic of its own", cfg.deadletter_topic);
    }
    let dead_letters: rdkafka::producer::FutureProducer = crate::kafka::client(&cfg.brokers)?
        .set("enable.idempotence", "true")
        .create()
        .with_context(|| format!("creating a Kafka producer for {}", cfg.brokers))?;
    consumer.subscribe(&topics).with_context(|| format!("subscribing to {topics:?}"))?;
    tracing::info!(?topics, es = %cfg.es_url, mongo = %cfg.mongo_url, "ecom sink running");

    let dead_letters = driver::KafkaDeadLetters { producer: &dead_letters, topic: &cfg.deadletter_topic };
    let driver = driver::Driver {
        store: &stores,
        dead_letters: &dead_letters,
        stop: stop_rx.clone(),
        health: &health,
        backoff: driver::Backoff::STORES,
    };
    loop {
        let mut batch = Batch::default();
        let mut next_offsets = driver::Offsets::new();
        let deadline = Instant::now() + cfg.batch_max_delay;
        while batch.len() < cfg.batch_size {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() && !batch.is_empty() {
                break;
            }
            let wait = if left.is_zero() { cfg.batch_max_delay } else { left };
            if *stop_rx.borrow() {
                break;
            }
            tokio::select! {
                _ = stop_rx.changed() => continue,
                m = tokio::time::timeout(wait, consumer.recv()) => match m {
                    Err(_) => continue,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "kafka receive error");
                        metrics::counter!("ecom_sink_kafka_errors_total").increment(1);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Ok(Ok(msg)) => {
                        next_offsets.insert((msg.topic().to_string(), msg.partition()), msg.offset() + 1);
                        let payload = msg.payload().unwrap_or_default();
                        // Subscribed by exact names, so every topic is one of ours.
                        let kind = kinds.get(msg.topic()).copied().unwrap_or(Kind::Event);
                        match record::decode(kind, payload) {
                            Ok(r) => batch.push_from(r, msg.topic(), msg.partition(), msg.offset()),
                            Err(reason) => batch.dead.push(DeadLetter {
                                kind,
                                topic: msg.topic().to_string(),
                                partition: msg.partition(),
                                offset: msg.offset(),
                                raw: payload.to_vec(),
                                reason,
                            }),
                        }
                    }
                },
            }
        }
        let stopping = *stop_rx.borrow();
        if !batch.is_empty() {
            driver.deliver(&mut driver::KafkaSource::new(&consumer), &batch, &next_offsets).await?;
        }
        if stopping {
            tracing::info!("ecom sink stopped");
            return Ok(());
        }
    }
}

/// The session timeout of a sink that joins its group as a dynamic member: how long a killed
/// sink's partitions wait before the group gives them to another. librdkafka heartbeats from
/// its own thread, so a busy sink does not miss it; the broker allows 6 s and up.
pub const DYNAMIC_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// The sink's consumer.
pub(crate) type Sink = StreamConsumer<SinkContext>;

/// Turns librdkafka's statistics into `ecom_sink_consumer_lag{topic,partition}`: records of the
/// partition not yet committed by the sink (high watermark, or last stable offset under
/// read_committed, minus the committed offset), for the partitions this sink holds.
pub(crate) struct SinkContext;

impl rdkafka::ClientContext for SinkContext {
    fn stats(&self, stats: rdkafka::Statistics) {
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                // -1 is librdkafka's internal UA partition; a lag of -1 means not assigned here.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!("ecom_sink_consumer_lag", "topic" => topic.clone(), "partition" => partition.to_string())
                        .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for SinkContext {
    /// The outcome of a queued offset commit (the driver does not wait for it).
    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _offsets: &rdkafka::TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(error = %e, "committing Kafka offsets failed; those records will be read again");
            metrics::counter!("ecom_sink_commit_errors_total").increment(1);
        }
    }
}

/// Why the sink cannot do its work now (None: it can). `/health` answers 503 with the reason
/// while it is set: at start until both stores answer, and while a batch cannot be written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Health(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl Health {
    pub(crate) fn set(&self, why: Option<String>) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = why;
    }

    fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

async fn serve_metrics(
    addr: SocketAddr,
    prom: metrics_exporter_prometheus::PrometheusHandle,
    health: Health,
) -> anyhow::Result<()> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = axum::Router::new().route("/metrics", get(move || std::future::ready(prom.render()))).route(
        "/health",
        get(move || {
            let why = health.get();
            async move {
                match why {
                    None => (StatusCode::OK, "ok\n".to_string()),
                    Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: {why}\n")),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for sink metrics (is another ecom sink running?)"))?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(topic: &str) -> SinkConfig {
        SinkConfig { topic: topic.into(), ..Default::default() }
    }

    #[test]
    fn each_topic_names_one_kind() {
        let kinds = topic_kinds(&cfg("ecom.events.enriched")).unwrap();
        assert_eq!(kinds["ecom.events.enriched"], Kind::Event);
        assert_eq!(kinds["ecom.sessions"], Kind::Session);
        assert_eq!(kinds["ecom.metrics"], Kind::WindowMetrics);
        let clash = topic_kinds(&cfg("ecom.sessions")).unwrap_err().to_string();
        assert!(clash.contains("ecom.sessions is named for both event and session records"), "{clash}");
        let empty = SinkConfig { metrics_topic: String::new(), ..cfg("e") };
        assert!(topic_kinds(&empty).unwrap_err().to_string().starts_with("--metrics-topic is empty"));
    }

    #[test]
    fn index_prefixes_must_not_match_each_other() {
        assert!(check_prefixes(&cfg("e")).is_ok());
        let same = SinkConfig { metrics_index_prefix: "ecom-events".into(), ..cfg("e") };
        let why = check_prefixes(&same).unwrap_err().to_string();
        assert!(why.starts_with("--index-prefix ecom-events would also match"), "{why}");
        let nested = SinkConfig { sessions_index_prefix: "ecom-events-sessions".into(), ..cfg("e") };
        assert!(check_prefixes(&nested).is_err());
        // A shared beginning without the dash is fine: `ecom-s-*` does not match `ecom-sessions-…`.
        let near = SinkConfig { metrics_index_prefix: "ecom-s".into(), ..cfg("e") };
        assert!(check_prefixes(&near).is_ok());
    }
}
