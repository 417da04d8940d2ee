//! ecom-sink: consumes ecom.events.enriched (read_committed) and writes every event to
//! Elasticsearch (index ecom-events-YYYY.MM.DD) and MongoDB (ecom.events), both keyed by
//! event_id so a replay overwrites instead of duplicating. Delivery is at-least-once: Kafka
//! offsets are committed only after both stores acknowledged the batch.
//! Shape: config -> doc encoder -> store writers -> batching driver.
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![deny(unused_must_use)]

pub mod doc;
pub mod stores;

use anyhow::Context;
use ecom_proto::v1::EnrichedEvent;
use prost::Message as _;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How the sink acknowledges Kafka. Only at-least-once exists: the stores are idempotent by
/// event_id, which turns redelivery into overwrites, so nothing is lost or duplicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    /// Commit offsets after both stores acknowledged the batch.
    AtLeastOnce,
}

/// Everything `ecom sink` needs.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Topic to read (ecom.events.enriched).
    pub topic: String,
    /// Consumer group.
    pub group_id: String,
    /// Elasticsearch base URL.
    pub es_url: String,
    /// Index prefix; documents go to `<prefix>-YYYY.MM.DD` by event time.
    pub index_prefix: String,
    /// MongoDB URL.
    pub mongo_url: String,
    /// MongoDB database (collection `events` in it).
    pub mongo_db: String,
    /// Largest batch written at once.
    pub batch_max: usize,
    /// Longest a partial batch waits before it is written.
    pub batch_wait: Duration,
    /// Listen address for /health and /metrics.
    pub metrics_addr: SocketAddr,
    /// Delivery semantics.
    pub delivery: DeliveryMode,
}

/// Runs the sink until `shutdown` resolves; the batch in hand is finished first.
pub async fn run(cfg: SinkConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let prom = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the Prometheus recorder")?;
    let stores = stores::Stores::connect(&cfg).await?;
    stores.ensure_schema().await?;
    serve_metrics(cfg.metrics_addr, prom).await?;

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // The job writes with Kafka transactions: only committed records are real.
        .set("isolation.level", "read_committed")
        .create()
        .with_context(|| format!("creating a Kafka consumer for {}", cfg.brokers))?;
    consumer.subscribe(&[&cfg.topic]).with_context(|| format!("subscribing to {}", cfg.topic))?;
    tracing::info!(topic = %cfg.topic, es = %cfg.es_url, mongo = %cfg.mongo_url, delivery = ?cfg.delivery, "ecom sink running");

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    loop {
        let mut batch: Vec<EnrichedEvent> = Vec::with_capacity(cfg.batch_max);
        let mut dead: Vec<(Vec<u8>, String)> = Vec::new();
        let mut next_offsets: BTreeMap<(String, i32), i64> = BTreeMap::new();
        let deadline = Instant::now() + cfg.batch_wait;
        while batch.len() + dead.len() < cfg.batch_max {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() && !(batch.is_empty() && dead.is_empty()) {
                break;
            }
            let wait = if left.is_zero() { cfg.batch_wait } else { left };
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
                        match EnrichedEvent::decode(payload) {
                            Ok(e) if e.event.as_ref().is_some_and(|ev| !ev.event_id.is_empty()) => batch.push(e),
                            Ok(_) => dead.push((payload.to_vec(), "enriched event without event.event_id".into())),
                            Err(err) => dead.push((payload.to_vec(), format!("not an ecom.v1.EnrichedEvent: {err}"))),
                        }
                    }
                },
            }
        }
        let stopping = *stop_rx.borrow();
        if !batch.is_empty() || !dead.is_empty() {
            write_until_done(&stores, &batch, &dead, &stop_rx).await?;
            let mut tpl = TopicPartitionList::new();
            for ((t, p), o) in &next_offsets {
                tpl.add_partition_offset(t, *p, Offset::Offset(*o)).context("building the offset commit")?;
            }
            consumer.commit(&tpl, CommitMode::Sync).context("committing Kafka offsets")?;
            metrics::counter!("ecom_sink_events_total").increment(batch.len() as u64);
            metrics::counter!("ecom_sink_deadletter_total").increment(dead.len() as u64);
        }
        if stopping {
            tracing::info!("ecom sink stopped");
            return Ok(());
        }
    }
}

/// Writes a batch to both stores, retrying with backoff: offsets are not committed until it
/// succeeds, so a failing store pauses the sink instead of losing data.
async fn write_until_done(
    stores: &stores::Stores,
    batch: &[EnrichedEvent],
    dead: &[(Vec<u8>, String)],
    stop: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(100);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let started = Instant::now();
        match stores.write(batch, dead).await {
            Ok(()) => {
                let took = started.elapsed();
                metrics::histogram!("ecom_sink_batch_seconds").record(took.as_secs_f64());
                if took > Duration::from_secs(5) {
                    tracing::warn!(events = batch.len(), seconds = took.as_secs_f64(), "slow batch write");
                } else {
                    tracing::debug!(events = batch.len(), seconds = took.as_secs_f64(), "batch written");
                }
                return Ok(());
            }
            Err(e) => {
                metrics::counter!("ecom_sink_write_errors_total").increment(1);
                tracing::error!(
                    error = format!("{e:#}"),
                    attempt,
                    "writing a batch failed; retrying (offsets not committed)"
                );
                if *stop.borrow() && attempt >= 3 {
                    return Err(e.context("giving up on shutdown; the batch will be re-read from Kafka on restart"));
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn serve_metrics(addr: SocketAddr, prom: metrics_exporter_prometheus::PrometheusHandle) -> anyhow::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/metrics", get(move || std::future::ready(prom.render())))
        .route("/health", get(|| async { "ok\n" }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for sink metrics (is another ecom sink running?)"))?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}
