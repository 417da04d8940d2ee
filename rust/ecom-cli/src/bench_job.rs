//! `ecom bench job`: the Flink job on the local cluster, Kafka → job (JNI + gRPC to a real
//! `ecom serve`) → Kafka. Throughput on a pre-filled scratch topic at each parallelism, the same
//! with unbatched serve calls as the baseline, and produced → enriched latency at a fixed rate.
//! Each run uses its own scratch topics, consumer group and transactional ids, deleted after.
use crate::demo::ClusterArgs;
use crate::flink::Flink;
use crate::generate::{self, GenerateArgs};
use crate::services::{wait_http, Children};
use anyhow::{bail, Context};
use ecom_core::now_ms;
use ecom_proto::v1::{EnrichedEvent, InvalidEvent};
use prost::Message as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `ecom bench job`.
#[derive(Debug, clap::Args)]
pub(crate) struct JobBench {
    /// Records pre-filled into the scratch raw topic of each throughput run (0: no throughput
    /// runs, only the latency run). A new job spends its first tens of seconds compiling (JIT):
    /// fewer records measure more of that.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Job parallelisms measured (the scratch raw topic has 2 partitions).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    parallelism: Vec<u32>,
    /// Records per second of the latency run.
    #[arg(long, default_value_t = 2_000.0)]
    rate: f64,
    /// Seconds of the latency run that are measured.
    #[arg(long, default_value_t = 30)]
    latency_seconds: u64,
    /// Seconds produced at the rate before the latency run's measured part, left out of its
    /// percentiles: a new job's first seconds are class loading and JIT compilation.
    #[arg(long, default_value_t = 5)]
    warmup_seconds: u64,
    /// Skip the baseline (serve calls one event each: --rpc-batch-size 1, parallelism 1).
    #[arg(long)]
    no_baseline: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Redis (for the bench's ecom serve).
    #[command(flatten)]
    redis: crate::stack::RedisArgs,
    /// Models directory the bench's ecom serve scores with.
    #[arg(long, default_value = "models", env = "ECOM_MODELS_DIR")]
    models_dir: PathBuf,
    /// Give up on one run after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// More job options for every run, after `--` (e.g. `-- --checkpoint-interval-ms 10000`).
    #[arg(last = true, allow_hyphen_values = true, num_args = 0..)]
    job_args: Vec<String>,
}

/// The bench's own ecom serve, away from the default ports.
const SERVE_GRPC: &str = "127.0.0.1:28171";
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
    /// produced → read by a read_committed consumer (after the job's transaction commits), ms.
    visible_p50_ms: i64,
    visible_p99_ms: i64,
    /// CPU seconds each process on the path used during the run (submit → cancel).
    cpu: Vec<(&'static str, f64)>,
    /// Flink's `numRestarts` of the run's job (each failure is printed as a warning).
    job_restarts: u64,
    /// Flink's own counters of each vertex (chain of operators) at the run's end.
    vertices: Vec<Vertex>,
}

/// One run: `rate` None: pre-fill, then start the job (throughput); Some: start the job, then
/// produce at that rate (latency).
struct Case<'a> {
    label: &'a str,
    parallelism: u32,
    rpc_batch: u32,
    rate: Option<f64>,
}

/// Every process's pid and command line (arguments joined by spaces), from /proc (Linux), read
/// as the iterator is.
pub(crate) fn cmdlines() -> impl Iterator<Item = (u32, String)> {
    std::fs::read_dir("/proc").into_iter().flatten().flatten().filter_map(|d| {
        let pid = d.file_name().to_str()?.parse::<u32>().ok()?;
        let cmd = std::fs::read(d.path().join("cmdline")).ok()?;
        Some((pid, String::from_utf8_lossy(&cmd).replace('\0', " ")))
    })
}

/// A process's peak resident memory (VmHWM), MB.
pub(crate) fn vm_hwm_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse::<f64>().ok());
    kb.map(|kb| kb / 1024.0)
}

/// The processes a run's CPU goes to, found by their command lines in /proc (Linux), so a run
/// can say where its CPU went. A process not found is left out.
#[derive(Clone)]
pub(crate) struct Procs(Vec<(&'static str, u32)>);

impl Procs {
    fn find(serve: Option<u32>) -> Self {
        Self::find_with(&serve.map(|pid| ("serve", pid)).into_iter().collect::<Vec<_>>())
    }

    /// This process, `started` (processes the caller started, by name) and the stack's servers.
    pub(crate) fn find_with(started: &[(&'static str, u32)]) -> Self {
        let mut found = vec![("bench", std::process::id())];
        found.extend_from_slice(started);
        let patterns = [
            ("flink tm", "TaskManagerRunner"),
            ("flink jm", "StandaloneSessionClusterEntrypoint"),
            ("kafka", "kafka.Kafka"),
            ("redis", "redis-server"),
            ("elastic", "org.elasticsearch.bootstrap.Elasticsearch"),
            ("ferretdb", "ferretdb"),
        ];
        let cmdlines: Vec<(u32, String)> = cmdlines().collect();
        for (name, pattern) in patterns {
            // A process the caller started (a second TaskManager) is not the stack's.
            if let Some((pid, _)) =
                cmdlines.iter().find(|(p, c)| c.contains(pattern) && !started.iter().any(|(_, s)| s == p))
            {
                found.push((name, *pid));
            }
        }
        Procs(found)
    }

    /// Peak resident memory of each process (VmHWM), MB.
    pub(crate) fn peak_rss_mb(&self) -> Vec<(&'static str, f64)> {
        self.0.iter().map(|&(name, pid)| (name, vm_hwm_mb(pid).unwrap_or(0.0))).collect()
    }

    /// User + system CPU seconds of each process so far (/proc/PID/stat counts in 1/100 s).
    pub(crate) fn cpu_seconds(&self) -> Vec<(&'static str, f64)> {
        self.0
            .iter()
            .map(|&(name, pid)| {
                let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|st| {
                    // Fields after the command name (which may hold spaces) in parentheses.
                    let rest = st.rsplit_once(')')?.1;
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
                });
                (name, ticks.unwrap_or(0) as f64 / 100.0)
            })
            .collect()
    }
}

pub(crate) async fn run(a: JobBench) -> anyhow::Result<()> {
    if ecom_model::current(&a.models_dir).is_none() {
        bail!("no model in {} (models/CURRENT): run `ecom train` first (dev/demo trains one)", a.models_dir.display());
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let exe = std::env::current_exe().context("locating the ecom binary")?;
    let log_path = std::env::temp_dir().join("ecom-bench-job-serve.log");
    std::fs::File::create(&log_path)?; // this run's log only
    let serve = crate::services::serve_command(&exe, &a.redis, &a.models_dir, SERVE_GRPC, SERVE_HTTP)?;
    let serve = crate::services::spawn_logged(serve, "serve", &log_path)?;
    let mut children = Children(vec![("serve".into(), serve)]);
    wait_http(&http, &format!("http://{SERVE_HTTP}/health"), "ecom serve", &log_path, &mut children).await?;
    let flink = a.cluster.flink();
    let procs = Procs::find(children.0.first().and_then(|(_, c)| c.id()));

    let mut cases: Vec<(String, u32, u32)> = if a.events == 0 {
        Vec::new()
    } else {
        a.parallelism.iter().map(|&p| (format!("throughput, parallelism {p}"), p, 64)).collect()
    };
    if !a.no_baseline && a.events > 0 {
        cases.push(("baseline: unbatched serve calls, parallelism 1".into(), 1, 1));
    }
    let mut runs = Vec::new();
    for (label, p, batch) in cases {
        eprintln!("==> {label}: {} records pre-filled", a.events);
        let r =
            one_run(&a, &flink, &http, &procs, Case { label: &label, parallelism: p, rpc_batch: batch, rate: None })
                .await;
        runs.push(r?);
    }
    let secs = a.latency_seconds;
    eprintln!("==> latency: {} records/s for {} s ({secs} s measured), parallelism 1", a.rate, a.warmup_seconds + secs);
    let case =
        Case { label: "latency at a fixed rate, parallelism 1", parallelism: 1, rpc_batch: 64, rate: Some(a.rate) };
    let latency = one_run(&a, &flink, &http, &procs, case);
    runs.push(latency.await?);
    children.stop().await;

    if a.json {
        let out: Vec<_> = runs
            .iter()
            .map(|r| {
                json!({"run": r.label, "parallelism": r.parallelism, "rpc_batch_size": r.rpc_batch,
                       "records": r.records, "events_per_s": r.records as f64 / r.job_seconds.max(1e-9),
                       "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
                       "visible_p50_ms": r.visible_p50_ms, "visible_p99_ms": r.visible_p99_ms,
                       "job_restarts": r.job_restarts,
                       "vertices": r.vertices.iter().map(|v| json!({"name": v.name, "read_records": v.read_records,
                           "read_bytes": v.read_bytes, "write_records": v.write_records, "write_bytes": v.write_bytes,
                           "busy_ms": v.busy_ms, "backpressured_ms": v.backpressured_ms})).collect::<Vec<_>>(),
                       "cpu_seconds": r.cpu.iter().map(|(n, s)| (n.to_string(), json!(s))).collect::<serde_json::Map<_, _>>()})
            })
            .collect();
        println!("{}", json!({"runs": out}));
        return Ok(());
    }
    println!(
        "{:<52} {:>9} {:>10} {:>8} {:>8} {:>12} {:>12} {:>9}",
        "run", "records", "events/s", "p50 ms", "p99 ms", "visible p50", "visible p99", "restarts"
    );
    for r in &runs {
        println!(
            "{:<52} {:>9} {:>10.0} {:>8} {:>8} {:>12} {:>12} {:>9}",
            r.label,
            r.records,
            r.records as f64 / r.job_seconds.max(1e-9),
            r.p50_ms,
            r.p99_ms,
            r.visible_p50_ms,
            r.visible_p99_ms,
            r.job_restarts
        );
    }
    println!("(events/s: records over first ingestion → last output; p50/p99: produced_at → enriched_at, as the");
    println!(" event leaves the job; visible: produced_at → read by a read_committed consumer, i.e. after the");
    println!(" checkpoint that commits it — what a downstream reader sees under exactly-once; the latency run");
    println!(
        " leaves out its first {} s of warm-up; restarts: Flink's numRestarts of the run's job — a run that",
        a.warmup_seconds
    );
    println!(" restarted measured its recovery too)");
    println!();
    println!("CPU per 1,000 records, ms (user + system, from the job's submission to the last output;");
    println!("bench: this process, which produces the latency run's records and reads every run's output):");
    crate::bench::print_cpu_per_k("run", 52, runs.iter().map(|r| (r.label.as_str(), r.records, r.cpu.as_slice())));
    for r in runs.iter().filter(|r| !r.vertices.is_empty()) {
        println!();
        println!("{}: the job's vertices (Flink's counters, summed over subtasks)", r.label);
        print!("{}", vertex_table(&r.vertices));
    }
    Ok(())
}

/// Each vertex's records and serialized bytes per record in and out (what its network edges
/// carry), and its task threads' busy and backpressured time per 1,000 records the raw source
/// read (counters of the same moment).
fn vertex_table(vertices: &[Vertex]) -> String {
    let per_rec = |b: u64, n: u64| if n == 0 { "-".to_string() } else { format!("{:.0}", b as f64 / n as f64) };
    let read = raw_source_read(vertices);
    let per_k = |ms: u64| ms as f64 * 1000.0 / read.max(1) as f64;
    let mut out = format!(
        "{:<60} {:>10} {:>8} {:>10} {:>8} {:>10} {:>10}\n",
        "vertex", "in", "B/in", "out", "B/out", "busy ms/k", "bp ms/k"
    );
    for v in vertices {
        let name: String = v.name.chars().take(60).collect();
        out += &format!(
            "{name:<60} {:>10} {:>8} {:>10} {:>8} {:>10.0} {:>10.0}\n",
            v.read_records,
            per_rec(v.read_bytes, v.read_records),
            v.write_records,
            per_rec(v.write_bytes, v.write_records),
            per_k(v.busy_ms),
            per_k(v.backpressured_ms)
        );
    }
    out += "(in/out: records over the vertex's network edges and serialized bytes per record — sources\n";
    out += " read from Kafka, sinks write to Kafka; busy/bp: ms its task threads were busy or\n";
    out += &format!(" backpressured per 1,000 records the raw source had read: {read})\n");
    out
}

/// One vertex of the job graph (a chain of operators) and Flink's counters for it, summed over
/// its subtasks: what crosses each network edge (records and serialized bytes) and where the task
/// threads spent their time.
#[derive(Debug, Clone, PartialEq)]
struct Vertex {
    name: String,
    read_records: u64,
    read_bytes: u64,
    write_records: u64,
    write_bytes: u64,
    busy_ms: u64,
    backpressured_ms: u64,
}

impl Vertex {
    /// The vertices of a `/jobs/<id>` answer.
    fn parse(job: &serde_json::Value) -> Vec<Vertex> {
        let n = |m: &serde_json::Value, k: &str| m.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0) as u64;
        job.get("vertices")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .map(|v| {
                let m = &v["metrics"];
                Vertex {
                    name: v["name"].as_str().unwrap_or("?").to_string(),
                    read_records: n(m, "read-records"),
                    read_bytes: n(m, "read-bytes"),
                    write_records: n(m, "write-records"),
                    write_bytes: n(m, "write-bytes"),
                    busy_ms: n(m, "accumulated-busy-time"),
                    backpressured_ms: n(m, "accumulated-backpressured-time"),
                }
            })
            .collect()
    }
}

/// The job's vertices as Flink counts them once its raw source's count has reached `records`.
/// The REST API answers from metrics the JobManager fetches every few seconds (Flink's
/// `metrics.fetcher.update-interval`, 10 s by default), so this asks again for up to 15 s and
/// then takes the last answer (empty when the REST API does not answer).
async fn vertices(http: &reqwest::Client, rest: &str, job: &str, records: u64) -> Vec<Vertex> {
    let mut last = Vec::new();
    for _ in 0..15 {
        if let Ok(r) = http.get(format!("{rest}/jobs/{job}")).send().await {
            last = r.json::<serde_json::Value>().await.map(|v| Vertex::parse(&v)).unwrap_or_default();
        }
        if raw_source_read(&last) >= records {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    last
}

/// Records the raw-event source has read, by Flink's counters (0 when it is not among them).
fn raw_source_read(vertices: &[Vertex]) -> u64 {
    vertices.iter().find(|v| v.name.contains("raw-source")).map_or(0, |v| v.read_records)
}

/// One job on fresh scratch topics.
async fn one_run(
    a: &JobBench,
    flink: &Flink<'_>,
    http: &reqwest::Client,
    procs: &Procs,
    case: Case<'_>,
) -> anyhow::Result<Run> {
    let Case { label, parallelism, rpc_batch, rate } = case;
    let id = format!("bench-{}", now_ms());
    let topic = |what: &str| format!("ecom.{id}.{what}");
    let names = ["raw", "enriched", "invalid", "sessions", "metrics", "quality"].map(topic);
    let admin = scratch_topics(&a.cluster.brokers, &names).await?;
    let records = match rate {
        Some(r) => (r * (a.warmup_seconds + a.latency_seconds) as f64) as u64,
        None => a.events,
    };
    let mut gen = GenerateArgs::with(records, 1, 0.02, None, &a.cluster.brokers);
    gen.topic = names[0].clone();
    gen.quiet = true;
    gen.rate = rate;
    gen.start_ms = Some(now_ms() - 2 * 3_600_000 - records as i64 * 1_000);
    if rate.is_none() {
        generate::generate(gen.clone()).await.context("pre-filling the raw topic")?;
    }
    let args: Vec<String> = scratch_job_args(&a.cluster.brokers, SERVE_GRPC, &names, &id)
        .into_iter()
        .chain(["--rpc-batch-size".to_string(), rpc_batch.to_string()])
        .chain(a.job_args.iter().cloned())
        .collect();
    let cpu_before = procs.cpu_seconds();
    let topics: Vec<&str> = names.iter().map(String::as_str).collect();
    let job = match flink.submit(http, parallelism, &args).await {
        Ok(job) => job,
        Err(e) => {
            let _ = admin.delete_topics(&topics, &AdminOptions::new()).await;
            return Err(e);
        }
    };
    let mut watch = flink.watch(http, &job, &std::env::temp_dir());
    // The generator blocks while it paces: on a thread of its own, which a run whose job stopped
    // leaves behind (the bench then ends) instead of waiting out the run's length.
    let producing = match rate {
        Some(_) => Some(generate_on_a_thread(gen)?),
        None => None,
    };
    // Raced against the watcher: a job that stops ends the run at once, not after the timeout.
    let counted = tokio::select! {
        c = count_outputs(a, &names[1], &names[2], records) => Ok(c),
        ended = watch.ended() => Err(ended),
    };
    let cpu: Vec<(&'static str, f64)> = procs
        .cpu_seconds()
        .into_iter()
        .zip(cpu_before)
        .map(|((name, after), (_, before))| (name, after - before))
        .collect();
    let job_status = watch.finish().await;
    let mut vertices = Vec::new();
    if counted.is_ok() {
        vertices = self::vertices(http, flink.rest, &job, records).await;
        flink.cancel(http, &job).await;
    }
    if let (Some(p), Ok(_)) = (producing, &counted) {
        p.await.context("the generator's thread panicked")?.context("producing at a fixed rate")?;
    }
    let _ = admin.delete_topics(&topics, &AdminOptions::new()).await;
    let (job_seconds, samples) = counted??;
    // The latency run's percentiles leave out what was produced during the warm-up.
    let measured_from = match rate {
        Some(_) => samples.iter().map(|s| s.0).min().unwrap_or(0) + a.warmup_seconds as i64 * 1000,
        None => i64::MIN,
    };
    let kept = samples.iter().filter(|s| s.0 >= measured_from);
    let (mut latencies, mut visible): (Vec<i64>, Vec<i64>) = kept.map(|s| (s.1, s.2)).unzip();
    latencies.sort_unstable();
    visible.sort_unstable();
    let pct = |v: &[i64], q: f64| crate::bench::pct(v, q).unwrap_or(0);
    Ok(Run {
        label: label.to_string(),
        parallelism,
        rpc_batch,
        records,
        job_seconds,
        p50_ms: pct(&latencies, 0.5),
        p99_ms: pct(&latencies, 0.99),
        visible_p50_ms: pct(&visible, 0.5),
        visible_p99_ms: pct(&visible, 0.99),
        cpu,
        job_restarts: job_status.restarts,
        vertices,
    })
}

/// Runs the generator on a thread of its own (it blocks while it paces); the receiver gets its
/// result.
pub(crate) fn generate_on_a_thread(
    gen: GenerateArgs,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<anyhow::Result<generate::GenerateSummary>>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let rt = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("generate".into())
        .spawn(move || {
            let _ = tx.send(rt.block_on(generate::generate(gen)));
        })
        .context("starting the generator's thread")?;
    Ok(rx)
}

/// A flag set when this is dropped: tells blocking threads to stop on every way out.
pub(crate) struct StopOnDrop(pub(crate) Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Creates a run's scratch topics (2 partitions each); the admin client deletes them after.
pub(crate) async fn scratch_topics(
    brokers: &str,
    names: &[String],
) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    let admin: AdminClient<DefaultClientContext> =
        ecom_sink::kafka::client(brokers)?.create().context("creating a Kafka admin client")?;
    let new: Vec<NewTopic<'_>> = names.iter().map(|t| NewTopic::new(t, 2, TopicReplication::Fixed(1))).collect();
    for r in admin.create_topics(&new, &AdminOptions::new()).await.context("creating scratch topics")? {
        r.map_err(|(t, e)| anyhow::anyhow!("creating topic {t}: {e}"))?;
    }
    Ok(admin)
}

/// The job's options for a bench run on scratch topics `names` (raw, enriched, invalid,
/// sessions, metrics, quality), with `id` as its consumer group and transactional-id prefix.
pub(crate) fn scratch_job_args(brokers: &str, serve: &str, names: &[String], id: &str) -> Vec<String> {
    [
        ("--bootstrap-servers", brokers),
        ("--serve-address", serve),
        ("--raw-topic", &names[0]),
        ("--enriched-topic", &names[1]),
        ("--invalid-topic", &names[2]),
        ("--sessions-topic", &names[3]),
        ("--metrics-topic", &names[4]),
        ("--quality-topic", &names[5]),
        ("--group-id", id),
        ("--transactional-id-prefix", id),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v.to_string()])
    .collect()
}

/// The span from a run's first ingestion to its last output, in seconds, and per enriched
/// event (produced_at, produced → enriched, produced → read) in ms.
type Counted = (f64, Vec<(i64, i64, i64)>);

/// Reads the run's enriched and invalid topics (read_committed) until `records` came out.
/// The Kafka polls block, so they run on a blocking thread, which stops within a poll when
/// this future is dropped.
async fn count_outputs(a: &JobBench, enriched: &str, invalid: &str, records: u64) -> anyhow::Result<Counted> {
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let (brokers, enriched, invalid) = (a.cluster.brokers.clone(), enriched.to_string(), invalid.to_string());
    let (timeout_secs, stopped) = (a.timeout_secs, stop.0.clone());
    tokio::task::spawn_blocking(move || {
        count_outputs_blocking(&brokers, &enriched, &invalid, records, timeout_secs, &stopped)
    })
    .await
    .context("reading the job's outputs panicked")?
}

fn count_outputs_blocking(
    brokers: &str,
    enriched: &str,
    invalid: &str,
    records: u64,
    timeout_secs: u64,
    stop: &AtomicBool,
) -> anyhow::Result<Counted> {
    let consumer: BaseConsumer = ecom_sink::kafka::client(brokers)?
        .set("group.id", format!("{enriched}-count"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()?;
    consumer.subscribe(&[enriched, invalid])?;
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    let (mut seen, mut first_in, mut last_out) = (0u64, i64::MAX, i64::MIN);
    let mut samples = Vec::new();
    while seen < records {
        if stop.load(Ordering::Relaxed) {
            bail!("stopped with {seen} of {records} records out of the job");
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout_secs} s with {seen} of {records} records out of the job");
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else { continue };
        let msg = msg.context("reading the job's outputs")?;
        let payload = msg.payload().unwrap_or_default();
        let (ingested, out) = if msg.topic() == enriched {
            let e = EnrichedEvent::decode(payload)?;
            if e.produced_at_ms > 0 {
                samples.push((e.produced_at_ms, e.enriched_at_ms - e.produced_at_ms, now_ms() - e.produced_at_ms));
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
    Ok(((last_out - first_in) as f64 / 1000.0, samples))
}

#[cfg(test)]
mod tests;
