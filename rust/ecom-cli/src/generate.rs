//! `ecom generate`: the generator's records into Kafka with an idempotent, batching producer.
use anyhow::Context;
use ecom_gen::{GenConfig, Generator, Payload};
use futures::stream::{FuturesUnordered, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

/// Arguments of `ecom generate`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct GenerateArgs {
    /// Number of records to produce (valid + malformed).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) events: u64,
    /// Seed: the same seed and --start-ms give the same records.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Share of deliberately malformed records, in [0, 1].
    #[arg(long, default_value_t = 0.02)]
    pub(crate) malformed_rate: f64,
    /// Event time of the first session (ms since epoch); default: far enough in the past
    /// that the whole run ends before now.
    #[arg(long)]
    pub(crate) start_ms: Option<i64>,
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092", env = "KAFKA_BOOTSTRAP")]
    pub(crate) brokers: String,
    /// Topic to write.
    #[arg(long, default_value = "ecom.events.raw")]
    pub(crate) topic: String,
    /// Hide the progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
}

/// What a generate run produced: counts and the exact Kafka positions written.
#[derive(Debug, Default)]
pub(crate) struct GenerateSummary {
    pub(crate) produced: u64,
    pub(crate) malformed_by_reason: BTreeMap<String, u64>,
    pub(crate) positions: HashSet<(i32, i64)>,
    pub(crate) seconds: f64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

pub(crate) async fn run(a: GenerateArgs) -> anyhow::Result<GenerateSummary> {
    if !(0.0..=1.0).contains(&a.malformed_rate) {
        anyhow::bail!("--malformed-rate {} is outside [0, 1]", a.malformed_rate);
    }
    let seed = a.seed.unwrap_or_else(|| now_ms() as u64);
    // Sessions start ~1 s apart and last up to ~20 min: start early enough to end in the past.
    let span_ms = (a.events as i64) * 250 + 30 * 60_000;
    let start_ms = a.start_ms.unwrap_or_else(|| now_ms() - span_ms);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &a.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "10")
        .set("batch.size", "262144")
        .set("queue.buffering.max.messages", "200000")
        .set("message.timeout.ms", "60000")
        .create()
        .with_context(|| format!("creating a Kafka producer for {}", a.brokers))?;

    let bar = if a.quiet { ProgressBar::hidden() } else { ProgressBar::new(a.events) };
    bar.set_style(
        ProgressStyle::with_template("generate {bar:30} {pos}/{len} events {per_sec} eta {eta}")
            .expect("static template"),
    );
    let started = Instant::now();
    let mut summary = GenerateSummary::default();
    let mut inflight = FuturesUnordered::new();
    let gen = Generator::new(GenConfig { events: a.events, seed, malformed_rate: a.malformed_rate, start_ms });
    for rec in gen {
        let value = match rec.payload {
            Payload::Event(mut e) => {
                e.produced_at_ms = now_ms();
                e.encode_to_vec()
            }
            Payload::Bytes(b) => b,
        };
        if let Some(r) = rec.expected_reject {
            *summary.malformed_by_reason.entry(r.as_str_name().to_string()).or_default() += 1;
        }
        let mut record = FutureRecord::to(&a.topic).key(rec.key.as_bytes()).payload(&value);
        loop {
            match producer.send_result(record) {
                Ok(fut) => {
                    inflight.push(fut);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    // Queue full: let deliveries complete before enqueueing more.
                    if let Some(done) = inflight.next().await {
                        note_delivery(done, &mut summary, &bar)?;
                    } else {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                Err((e, _)) => return Err(e).context(format!("producing to {}", a.topic)),
            }
        }
        while inflight.len() >= 100_000 {
            let done = inflight.next().await.expect("non-empty");
            note_delivery(done, &mut summary, &bar)?;
        }
    }
    while let Some(done) = inflight.next().await {
        note_delivery(done, &mut summary, &bar)?;
    }
    producer.flush(Duration::from_secs(30)).context("flushing the producer")?;
    bar.finish_and_clear();
    summary.seconds = started.elapsed().as_secs_f64();
    let malformed: u64 = summary.malformed_by_reason.values().sum();
    eprintln!(
        "generated {} records into {} ({} valid, {} malformed) in {:.1}s ({:.0} records/s), seed {seed}",
        summary.produced,
        a.topic,
        summary.produced - malformed,
        malformed,
        summary.seconds,
        summary.produced as f64 / summary.seconds.max(1e-9)
    );
    for (reason, n) in &summary.malformed_by_reason {
        eprintln!("  malformed {reason}: {n}");
    }
    Ok(summary)
}

fn note_delivery(
    done: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
    summary: &mut GenerateSummary,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    match done {
        Ok(Ok(d)) => {
            summary.produced += 1;
            summary.positions.insert((d.partition, d.offset));
            bar.inc(1);
            Ok(())
        }
        Ok(Err((e, _))) => Err(e).context("a record was not delivered to Kafka"),
        Err(_) => anyhow::bail!("the producer dropped a delivery report"),
    }
}
