//! `ecom bench`: numbers, not assertions. `ecom bench generate` measures the generator
//! in-process and into Kafka, our tuned producer side by side with librdkafka's defaults.
use anyhow::Context;
use ecom_gen::{GenConfig, Generator, Payload};
use prost::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use std::time::{Duration, Instant};

/// Arguments of `ecom bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Debug, clap::Subcommand)]
enum BenchWhat {
    /// Events/s of the generator: in-process, then into Kafka (tuned vs default producer).
    Generate(GenerateBench),
}

#[derive(Debug, clap::Args)]
struct GenerateBench {
    /// Records per measurement.
    #[arg(long, default_value_t = 500_000)]
    events: u64,
    /// Kafka bootstrap servers (skip the Kafka part with --no-kafka).
    #[arg(long, default_value = "127.0.0.1:9092", env = "KAFKA_BOOTSTRAP")]
    brokers: String,
    /// Only measure in-process.
    #[arg(long)]
    no_kafka: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(a: BenchArgs) -> anyhow::Result<()> {
    match a.what {
        BenchWhat::Generate(g) => generate(g).await,
    }
}

fn values(events: u64) -> (Vec<(String, Vec<u8>)>, f64, f64) {
    let cfg = GenConfig { events, seed: 1, ..Default::default() };
    let t = Instant::now();
    let n = Generator::new(cfg.clone()).count();
    let gen_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let out: Vec<(String, Vec<u8>)> = Generator::new(cfg)
        .map(|r| {
            let v = match r.payload {
                Payload::Event(e) => e.encode_to_vec(),
                Payload::Bytes(b) => b,
            };
            (r.key, v)
        })
        .collect();
    debug_assert_eq!(n, out.len());
    (out, gen_s, t.elapsed().as_secs_f64())
}

async fn produce(
    brokers: &str,
    topic: &str,
    settings: &[(&str, &str)],
    records: &[(String, Vec<u8>)],
) -> anyhow::Result<f64> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers).set("queue.buffering.max.messages", "1000000");
    for (k, v) in settings {
        cfg.set(*k, *v);
    }
    let producer: FutureProducer = cfg.create().context("creating the bench producer")?;
    let t = Instant::now();
    let mut inflight = Vec::with_capacity(records.len());
    for (k, v) in records {
        let mut rec = FutureRecord::to(topic).key(k.as_bytes()).payload(v);
        loop {
            match producer.send_result(rec) {
                Ok(f) => {
                    inflight.push(f);
                    break;
                }
                Err((_, r)) => {
                    rec = r;
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
    }
    for f in inflight {
        f.await.context("delivery report dropped")?.map_err(|(e, _)| e).context("delivery failed")?;
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(t.elapsed().as_secs_f64())
}

async fn generate(a: GenerateBench) -> anyhow::Result<()> {
    let (records, gen_s, enc_s) = values(a.events);
    let n = records.len() as f64;
    let mut rows = vec![("generate (in-process)", n / gen_s), ("generate + encode (in-process)", n / enc_s)];
    if !a.no_kafka {
        let topic = "ecom.bench.raw";
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &a.brokers)
            .create()
            .context("creating a Kafka admin client")?;
        let _ = admin.create_topics(&[NewTopic::new(topic, 2, TopicReplication::Fixed(1))], &AdminOptions::new()).await;
        let idempotent =
            [("enable.idempotence", "true"), ("acks", "all"), ("linger.ms", "10"), ("batch.size", "262144")];
        let with_lz4 = [idempotent.as_slice(), &[("compression.type", "lz4")]].concat();
        // Warm-up: the first producer after a broker start waits for its coordinator.
        produce(&a.brokers, topic, &idempotent, &records[..records.len().min(10_000)]).await?;
        let default_s = produce(&a.brokers, topic, &[], &records).await?;
        let idem_s = produce(&a.brokers, topic, &idempotent, &records).await?;
        let lz4_s = produce(&a.brokers, topic, &with_lz4, &records).await?;
        rows.push(("into Kafka, librdkafka defaults (baseline, not idempotent)", n / default_s));
        rows.push(("into Kafka, idempotent, linger 10 ms, 256 KiB batches (ecom generate)", n / idem_s));
        rows.push(("into Kafka, the same plus lz4 (--compression lz4)", n / lz4_s));
    }
    if a.json {
        let obj: serde_json::Map<String, serde_json::Value> =
            rows.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v.round()))).collect();
        println!("{}", serde_json::Value::Object(obj));
    } else {
        println!("ecom bench generate: {} records each", records.len());
        for (what, rate) in rows {
            println!("  {what:<72} {rate:>12.0} events/s");
        }
    }
    Ok(())
}
