//! `ecom bench job`: the Flink job on the local cluster, Kafka → job (JNI + gRPC to a real
//! `ecom serve`) → Kafka. Throughput on a pre-filled scratch topic at each parallelism, the same
//! with unbatched serve calls as the baseline, and produced → enriched latency at a fixed rate.
//! Each run uses its own scratch topics, consumer group and transactional ids, deleted after.
use crate::demo::{wait_http, Children, ClusterArgs, Flink};
use crate::generate::{self, GenerateArgs};
use anyhow::{bail, Context};
use ecom_proto::v1::{EnrichedEvent, InvalidEvent};
use prost::Message as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;
use serde_json::json;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Arguments of `ecom bench job`.
#[derive(Debug, clap::Args)]
pub(crate) struct JobBench {
    /// Records pre-filled into the scratch raw topic of each throughput run.
    #[arg(long, default_value_t = 50_000)]
    events: u64,
    /// Job parallelisms measured (the scratch raw topic has 2 partitions).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    parallelism: Vec<u32>,
    /// Records per second of the latency run.
    #[arg(long, default_value_t = 2_000.0)]
    rate: f64,
    /// Seconds of the latency run.
    #[arg(long, default_value_t = 30)]
    latency_seconds: u64,
    /// Skip the baseline (serve calls one event each: --rpc-batch-size 1, parallelism 1).
    #[arg(long)]
    no_baseline: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Redis URL (for the bench's ecom serve).
    #[arg(long, default_value = "redis://127.0.0.1:6379", env = "REDIS_URL")]
    redis_url: String,
    /// Models directory the bench's ecom serve scores with.
    #[arg(long, default_value = "models", env = "ECOM_MODELS_DIR")]
    models_dir: PathBuf,
    /// Give up on one run after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// The bench's own ecom serve, away from the default ports.
const SERVE_GRPC: &str = "127.0.0.1:50171";
const SERVE_HTTP: &str = "127.0.0.1:18171";

struct Run {
    label: String,
    parallelism: u32,
    rpc_batch: u32,
    records: u64,
    /// From the first record's ingestion to the last record's output (record timestamps).
    job_seconds: f64,
    /// produced → enriched, ms.
    p50_ms: i64,
    p99_ms: i64,
}

pub(crate) async fn run(a: JobBench) -> anyhow::Result<()> {
    if ecom_train::current(&a.models_dir).is_none() {
        bail!("no model in {} (models/CURRENT): run `ecom train` first (dev/demo trains one)", a.models_dir.display());
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let exe = std::env::current_exe().context("locating the ecom binary")?;
    let log_path = std::env::temp_dir().join("ecom-bench-job-serve.log");
    let log = std::fs::File::create(&log_path)?;
    let serve = tokio::process::Command::new(&exe)
        .args(["serve", "--grpc-addr", SERVE_GRPC, "--http-addr", SERVE_HTTP, "--redis-url", &a.redis_url])
        .arg("--models-dir")
        .arg(&a.models_dir)
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .context("starting ecom serve")?;
    let mut children = Children(vec![("serve".into(), serve)]);
    wait_http(&http, &format!("http://{SERVE_HTTP}/health"), "ecom serve", &log_path).await?;
    let flink = a.cluster.flink();

    let mut cases: Vec<(String, u32, u32)> =
        a.parallelism.iter().map(|&p| (format!("throughput, parallelism {p}"), p, 64)).collect();
    if !a.no_baseline {
        cases.push(("baseline: unbatched serve calls, parallelism 1".into(), 1, 1));
    }
    let mut runs = Vec::new();
    for (label, p, batch) in cases {
        eprintln!("==> {label}: {} records pre-filled", a.events);
        let r = one_run(&a, &flink, &http, &label, p, batch, None).await;
        runs.push(r?);
    }
    let secs = a.latency_seconds;
    eprintln!("==> latency: {} records/s for {secs} s, parallelism 1", a.rate);
    runs.push(one_run(&a, &flink, &http, "latency at a fixed rate, parallelism 1", 1, 64, Some(a.rate)).await?);
    children.stop().await;

    if a.json {
        let out: Vec<_> = runs
            .iter()
            .map(|r| {
                json!({"run": r.label, "parallelism": r.parallelism, "rpc_batch_size": r.rpc_batch,
                       "records": r.records, "events_per_s": r.records as f64 / r.job_seconds.max(1e-9),
                       "p50_ms": r.p50_ms, "p99_ms": r.p99_ms})
            })
            .collect();
        println!("{}", json!({"runs": out}));
        return Ok(());
    }
    println!("{:<52} {:>9} {:>12} {:>10} {:>10}", "run", "records", "events/s", "p50 ms", "p99 ms");
    for r in &runs {
        println!(
            "{:<52} {:>9} {:>12.0} {:>10} {:>10}",
            r.label,
            r.records,
            r.records as f64 / r.job_seconds.max(1e-9),
            r.p50_ms,
            r.p99_ms
        );
    }
    println!("(events/s: records over first ingestion → last output; p50/p99: produced_at → enriched_at)");
    Ok(())
}

/// One job on fresh scratch topics. `rate` None: pre-fill, then start the job (throughput);
/// Some: start the job, then produce at that rate (latency).
async fn one_run(
    a: &JobBench,
    flink: &Flink<'_>,
    http: &reqwest::Client,
    label: &str,
    parallelism: u32,
    rpc_batch: u32,
    rate: Option<f64>,
) -> anyhow::Result<Run> {
    let id = format!(
        "bench-{}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
    );
    let topic = |what: &str| format!("ecom.{id}.{what}");
    let names = ["raw", "enriched", "invalid", "sessions", "metrics"].map(topic);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &a.cluster.brokers)
        .create()
        .context("creating a Kafka admin client")?;
    let new: Vec<NewTopic<'_>> = names.iter().map(|t| NewTopic::new(t, 2, TopicReplication::Fixed(1))).collect();
    for r in admin.create_topics(&new, &AdminOptions::new()).await.context("creating scratch topics")? {
        r.map_err(|(t, e)| anyhow::anyhow!("creating topic {t}: {e}"))?;
    }
    let records = match rate {
        Some(r) => (r * a.latency_seconds as f64) as u64,
        None => a.events,
    };
    let mut gen = GenerateArgs::with(records, 1, 0.02, None, &a.cluster.brokers);
    gen.topic = names[0].clone();
    gen.quiet = true;
    gen.rate = rate;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    gen.start_ms = Some(now - 2 * 3_600_000 - records as i64 * 1_000);
    if rate.is_none() {
        generate::generate(gen.clone()).await.context("pre-filling the raw topic")?;
    }
    let args: Vec<String> = [
        ("--bootstrap-servers", a.cluster.brokers.clone()),
        ("--serve-address", SERVE_GRPC.to_string()),
        ("--raw-topic", names[0].clone()),
        ("--enriched-topic", names[1].clone()),
        ("--invalid-topic", names[2].clone()),
        ("--sessions-topic", names[3].clone()),
        ("--metrics-topic", names[4].clone()),
        ("--group-id", id.clone()),
        ("--transactional-id-prefix", id.clone()),
        ("--rpc-batch-size", rpc_batch.to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect();
    let job = flink.submit(http, parallelism, &args).await?;
    let producing = rate.map(|_| tokio::spawn(generate::generate(gen)));
    let counted = count_outputs(a, &names[1], &names[2], records).await;
    flink.cancel(http, &job).await;
    if let Some(p) = producing {
        p.await.context("the generate task panicked")?.context("producing at a fixed rate")?;
    }
    let _ = admin.delete_topics(&names.iter().map(String::as_str).collect::<Vec<_>>(), &AdminOptions::new()).await;
    let (job_seconds, mut latencies) = counted?;
    latencies.sort_unstable();
    let pct = |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)));
    Ok(Run {
        label: label.to_string(),
        parallelism,
        rpc_batch,
        records,
        job_seconds,
        p50_ms: pct(0.5).copied().unwrap_or(0),
        p99_ms: pct(0.99).copied().unwrap_or(0),
    })
}

/// Reads the run's enriched and invalid topics (read_committed) until `records` came out.
/// Returns the span from the first ingestion to the last output, in seconds, and the
/// produced → enriched latencies in ms.
async fn count_outputs(a: &JobBench, enriched: &str, invalid: &str, records: u64) -> anyhow::Result<(f64, Vec<i64>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &a.cluster.brokers)
        .set("group.id", format!("{enriched}-count"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()?;
    consumer.subscribe(&[enriched, invalid])?;
    let deadline = Instant::now() + Duration::from_secs(a.timeout_secs);
    let (mut seen, mut first_in, mut last_out) = (0u64, i64::MAX, i64::MIN);
    let mut latencies = Vec::new();
    while seen < records {
        if Instant::now() > deadline {
            bail!("timed out after {} s with {seen} of {records} records out of the job", a.timeout_secs);
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else { continue };
        let msg = msg.context("reading the job's outputs")?;
        let payload = msg.payload().unwrap_or_default();
        let (ingested, out) = if msg.topic() == enriched {
            let e = EnrichedEvent::decode(payload)?;
            if e.produced_at_ms > 0 {
                latencies.push(e.enriched_at_ms - e.produced_at_ms);
            }
            (e.ingested_at_ms, e.enriched_at_ms)
        } else {
            let e = InvalidEvent::decode(payload)?;
            (e.ingested_at_ms, e.rejected_at_ms)
        };
        seen += 1;
        first_in = first_in.min(ingested);
        last_out = last_out.max(out);
    }
    Ok(((last_out - first_in) as f64 / 1000.0, latencies))
}
