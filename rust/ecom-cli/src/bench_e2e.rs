//! `ecom bench e2e`: the whole pipeline — generator → Kafka → the Flink job (JNI + gRPC to a
//! real `ecom serve`) → Kafka → `ecom sink` → Elasticsearch and MongoDB — on scratch topics,
//! indices and a scratch database, deleted after. One job and one sink serve the whole run: a
//! warm-up, a ladder of fixed rates, then a burst at full speed; each part is measured by the
//! produce time of its records. Per stage, from the stamps a record carries (produced, ingested,
//! enriched), the moment the bench's read_committed consumer reads it (visible), the sink's
//! clock when it wrote the document (`indexed_at`) and a search probe that asks Elasticsearch
//! for a sample of the documents every 100 ms until they are searchable. Afterwards the stores
//! are counted: every record produced is in them, once.
use crate::bench_job::Procs;
use crate::demo::{wait_http, Children, ClusterArgs};
use crate::generate::now_ms;
use crate::generate::GenerateArgs;
use anyhow::{bail, Context};
use ecom_proto::v1::EnrichedEvent;
use prost::Message as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `ecom bench e2e`.
#[derive(Debug, clap::Args)]
pub(crate) struct E2eBench {
    /// The fixed rates of the ladder, records/s, in order.
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000,3000")]
    rates: Vec<f64>,
    /// Seconds each step of the ladder lasts.
    #[arg(long, default_value_t = 30)]
    step_seconds: u64,
    /// Seconds produced at the first rate before the ladder, left out of every figure: a new
    /// job's first seconds are class loading and JIT compilation.
    #[arg(long, default_value_t = 20)]
    warmup_seconds: u64,
    /// Records produced at full speed after the ladder (0: no maximum-rate run).
    #[arg(long, default_value_t = 60_000)]
    burst_records: u64,
    /// The search probe asks for one enriched event in this many.
    #[arg(long, default_value_t = 10)]
    probe_every: u64,
    /// The designs to run, one after the other on the same records: `ours`; `naive` (this code
    /// with one synchronous call per event at every remote step, one JNI call per event, one
    /// write request per document to each store); `floor` (the job's sources and exactly-once
    /// sinks with no work between: the runtime's best).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "ours")]
    design: Vec<Design>,
    /// One more run of `ours` with options of its own, after the designs and side by side with
    /// them (repeatable): `NAME=JOB OPTIONS [sink: SINK OPTIONS]`, e.g.
    /// `--variant 'fast=--checkpoint-interval-ms 500 sink: --es-refresh-interval-ms 250'`.
    /// NAME is lower-case letters, digits and dashes. `{models-dir}` in the job's options becomes
    /// the absolute --models-dir: `--variant 'in-process=--in-process-models {models-dir}'`
    /// scores and recommends inside the TaskManager from the model serve loads.
    #[arg(long = "variant", value_parser = parse_variant)]
    variants: Vec<Run>,
    /// Job parallelism (the scratch topics have 2 partitions).
    #[arg(long, default_value_t = 1)]
    parallelism: u32,
    /// Scale out on this box: two ecom serve (the job balances its calls across them), two ecom
    /// sink in one consumer group, and a second TaskManager (started from $FLINK_HOME with
    /// $FLINK_CONF_DIR, one slot) beside the cluster's; the job runs at parallelism 2 at least.
    #[arg(long)]
    scale_out: bool,
    /// With --scale-out: this many seconds after the first record, SIGKILL the second
    /// TaskManager, 5 s later the second sink, 5 s later the second serve. The job restarts on
    /// the first TaskManager, the sink's group hands the lost partitions to the first sink, the
    /// job's calls go to the first serve; the stores must still reconcile.
    #[arg(long, requires = "scale_out")]
    kill_after_secs: Option<u64>,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    redis: crate::stack::RedisArgs,
    #[command(flatten)]
    es: crate::stack::EsArgs,
    #[command(flatten)]
    mongo: crate::stack::MongoArgs,
    /// Models directory the bench's ecom serve scores with.
    #[arg(long, default_value = "models", env = "ECOM_MODELS_DIR")]
    models_dir: PathBuf,
    /// Give up on a design after this many seconds.
    #[arg(long, default_value_t = 1_800)]
    timeout_secs: u64,
    /// Print one JSON object per design (a line each) instead of tables.
    #[arg(long)]
    json: bool,
    /// More job options, after `--` (e.g. `-- --checkpoint-interval-ms 500`).
    #[arg(last = true, allow_hyphen_values = true, num_args = 0..)]
    job_args: Vec<String>,
}

impl E2eBench {
    /// --parallelism, at least 2 with --scale-out (a task on each TaskManager).
    fn job_parallelism(&self) -> u32 {
        if self.scale_out {
            self.parallelism.max(2)
        } else {
            self.parallelism
        }
    }
}

/// How the pipeline is built for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Design {
    /// As shipped: batched JNI and gRPC calls, many in flight (Async I/O), batched writes.
    Ours,
    /// The design of a system that calls out per event: --rpc-batch-size 1 with 1 in flight to each of Guard,
    /// Score and Recommend (Async I/O with capacity 1 waits for each answer before the next
    /// event, as a blocking call would), --batch-size 1 (one JNI validate/LSH call per event),
    /// and the sink's --batch-max 1 (one write request per document to each store).
    Naive,
    /// The job with --pass-through true: records parsed and written on, nothing else; the
    /// sink as in `ours`.
    Floor,
}

impl Design {
    fn job_args(self) -> &'static [&'static str] {
        match self {
            Design::Ours => &[],
            Design::Floor => &["--pass-through", "true"],
            Design::Naive => &[
                "--rpc-batch-size",
                "1",
                "--guard-capacity",
                "1",
                "--score-capacity",
                "1",
                "--recommend-capacity",
                "1",
                "--batch-size",
                "1",
            ],
        }
    }

    fn sink_args(self) -> &'static [&'static str] {
        match self {
            Design::Ours | Design::Floor => &[],
            Design::Naive => &["--batch-max", "1"],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Design::Ours => "ours",
            Design::Naive => "naive",
            Design::Floor => "floor",
        }
    }
}

/// One run of the bench: a name, and the options its job and its sink get besides the
/// bench's own.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Run {
    name: String,
    job_args: Vec<String>,
    sink_args: Vec<String>,
}

impl From<Design> for Run {
    fn from(d: Design) -> Self {
        let owned = |a: &[&str]| a.iter().map(|s| s.to_string()).collect();
        Run { name: d.name().into(), job_args: owned(d.job_args()), sink_args: owned(d.sink_args()) }
    }
}

/// What a variant's job options write for the bench's models directory (made absolute: the
/// TaskManagers do not share the bench's working directory).
const MODELS_DIR: &str = "{models-dir}";

/// `NAME=JOB OPTIONS [sink: SINK OPTIONS]`, options split at whitespace.
fn parse_variant(s: &str) -> Result<Run, String> {
    let (name, opts) = s.split_once('=').ok_or("expected NAME=OPTIONS, e.g. fast=--checkpoint-interval-ms 500")?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Err(format!(
            "variant name {name:?}: lower-case letters, digits and dashes only (it names topics and indices)"
        ));
    }
    let (job, sink) = match opts.split_once("sink:") {
        Some((job, sink)) => (job, sink),
        None => (opts, ""),
    };
    let words = |s: &str| s.split_whitespace().map(String::from).collect();
    Ok(Run { name: name.into(), job_args: words(job), sink_args: words(sink) })
}

/// The bench's own serve and sink instances, away from the default ports: the i-th's
/// (gRPC, HTTP) and the sink's /health address.
fn serve_addrs(i: u16) -> (String, String) {
    (format!("127.0.0.1:{}", 50172 + i), format!("127.0.0.1:{}", 18172 + i))
}
fn sink_addr(i: u16) -> String {
    format!("127.0.0.1:{}", 19472 + i)
}

/// Names of the replicas, as the CPU table and the kill log show them.
const SERVES: [&str; 2] = ["serve", "serve2"];
const SINKS: [&str; 2] = ["sink", "sink2"];
const SECOND_TM: &str = "flink tm2";

/// The event documents' fields that mark a serve method's fallback.
const FALLBACKS: [&str; 3] = ["guard_fallback", "recommend_fallback", "score_fallback"];

/// How often the search probe asks Elasticsearch.
const PROBE_EVERY_MS: u64 = 100;

/// The longest searchable lag (median of a step's last fifth) a sustained step may end with.
const SUSTAINED_MAX_LAG_MS: i64 = 10_000;

/// The stages, in order: each is a span from `produced_at` (the generator's clock).
const STAGES: [&str; 5] = ["ingested", "enriched", "visible", "sink write", "searchable"];

/// One part of the run: its label, its rate (None: full speed) and its records.
#[derive(Debug, Clone)]
struct Part {
    label: String,
    rate: Option<f64>,
    records: u64,
    measured: bool,
}

/// What one enriched event told: produced_at and the span to each stage (ms), the last two
/// only for probed events.
#[derive(Debug, Clone, Copy)]
struct Sample {
    produced: i64,
    spans: [Option<i64>; 5],
}

pub(crate) async fn run(a: E2eBench) -> anyhow::Result<()> {
    if ecom_train::current(&a.models_dir).is_none() {
        bail!("no model in {} (models/CURRENT): run `ecom train` first (dev/demo trains one)", a.models_dir.display());
    }
    if a.rates.iter().any(|r| !(*r > 0.0 && r.is_finite())) {
        bail!("--rates {:?}: every rate must be > 0", a.rates);
    }
    let mut parts = Vec::new();
    if let Some(&first) = a.rates.first() {
        parts.push(Part {
            label: "warm-up".into(),
            rate: Some(first),
            records: (first * a.warmup_seconds as f64) as u64,
            measured: false,
        });
    }
    for &r in &a.rates {
        let records = (r * a.step_seconds as f64) as u64;
        parts.push(Part {
            label: format!("{r:.0}/s for {} s", a.step_seconds),
            rate: Some(r),
            records,
            measured: true,
        });
    }
    if a.burst_records > 0 {
        parts.push(Part { label: "full speed".into(), rate: None, records: a.burst_records, measured: true });
    }
    parts.retain(|p| p.records > 0);
    let total: u64 = parts.iter().map(|p| p.records).sum();
    if total == 0 {
        bail!("nothing to produce: give --rates with --step-seconds > 0, or --burst-records");
    }
    let runs: Vec<Run> = a.design.iter().map(|&d| Run::from(d)).chain(a.variants.iter().cloned()).collect();
    if let Some(r) = runs.iter().enumerate().find(|(i, r)| runs[..*i].iter().any(|o| o.name == r.name)) {
        bail!("two runs named {:?}: give each --design and --variant its own name", r.1.name);
    }
    let mut reports = Vec::new();
    for run in runs {
        eprintln!("==> design {}: {total} records", run.name);
        let deadline = Instant::now() + Duration::from_secs(a.timeout_secs);
        let report = one_design(&a, &run, &parts, deadline).await?;
        let reconciled = report.print(&a, &parts, &run);
        reports.push((run, report, reconciled));
    }
    if reports.len() > 1 && !a.json {
        side_by_side(&parts, &reports);
    }
    if let Some((d, _, _)) = reports.iter().find(|r| !r.2) {
        return Err(crate::exit::unreconciled(format!(
            "design {}: the stores do not reconcile with what was produced (see its counts above)",
            d.name
        )));
    }
    Ok(())
}

/// One design on its own scratch topics, indices and database, deleted after.
async fn one_design(a: &E2eBench, run: &Run, parts: &[Part], deadline: Instant) -> anyhow::Result<Report> {
    let now = now_ms();
    let id = format!("bench-e2e-{}-{now}", run.name);
    let topic = |what: &str| format!("ecom.{id}.{what}");
    let scratch = Scratch {
        names: ["raw", "enriched", "invalid", "sessions", "metrics", "sink-deadletter", "catalog", "truth"].map(topic),
        stem: id.clone(),
        mongo_db: id.replace('-', "_"),
    };
    let Scratch { names, stem, mongo_db } = &scratch;
    let admin: AdminClient<DefaultClientContext> =
        ecom_sink::kafka::client(&a.cluster.brokers)?.create().context("creating a Kafka admin client")?;
    let new: Vec<NewTopic<'_>> = names.iter().map(|t| NewTopic::new(t, 2, TopicReplication::Fixed(1))).collect();
    for r in admin.create_topics(&new, &AdminOptions::new()).await.context("creating scratch topics")? {
        r.map_err(|(t, e)| anyhow::anyhow!("creating topic {t}: {e}"))?;
    }
    let es = a.es.http()?;
    let mongo = mongodb::Client::with_uri_str(a.mongo.url()?.expose()).await?;
    let result = measure(a, run, parts, &scratch, &es, &mongo, deadline).await;

    // Scratch data goes whatever happened.
    let topics: Vec<&str> = names.iter().map(String::as_str).collect();
    let _ = admin.delete_topics(&topics, &AdminOptions::new()).await;
    let _ = es.client.delete(format!("{}/{stem}-*", es.base)).send().await;
    for kind in ["events", "sessions", "metrics", "invalid"] {
        let _ = es.client.delete(format!("{}/_index_template/{stem}-{kind}", es.base)).send().await;
    }
    let _ = mongo.database(mongo_db).drop().await;
    result
}

/// One design's scratch resources: topics (raw, enriched, invalid, sessions, metrics, the
/// sink's dead letters, catalog, truth), the stem of its indices, groups and transactional
/// ids, and its MongoDB database.
struct Scratch {
    names: [String; 8],
    stem: String,
    mongo_db: String,
}

/// What the run measured.
struct Report {
    samples: Vec<Sample>,
    /// When the generator produced its first record (the ladder's parts follow from it).
    first_produced: i64,
    /// Each part's CPU seconds per process.
    cpu: Vec<Vec<(&'static str, f64)>>,
    peak_rss_mb: Vec<(&'static str, f64)>,
    produced: u64,
    enriched: u64,
    distinct_enriched: u64,
    invalid: u64,
    es_events: u64,
    es_invalid: u64,
    mongo_events: u64,
    mongo_invalid: u64,
    sink_deadletters: u64,
    /// Event documents with each of [`FALLBACKS`] true.
    fallbacks: [u64; 3],
    /// The full-speed part: the event documents the sink wrote from its start on, and the span
    /// to the last one (ms).
    burst: Option<(u64, i64)>,
    job_restarts: u64,
    /// What --kill-after-secs killed, and when (s after the first record).
    killed: Vec<(&'static str, u64)>,
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    a: &E2eBench,
    run: &Run,
    parts: &[Part],
    scratch: &Scratch,
    es: &crate::stack::EsHttp,
    mongo: &mongodb::Client,
    deadline: Instant,
) -> anyhow::Result<Report> {
    let Scratch { names, stem, mongo_db } = scratch;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let exe = std::env::current_exe().context("locating the ecom binary")?;
    let logs = std::env::temp_dir();
    let mut children = Children(Vec::new());
    let log = |name: &str| -> anyhow::Result<(std::fs::File, PathBuf)> {
        let path = logs.join(format!("ecom-bench-e2e-{name}.log"));
        Ok((std::fs::File::create(&path)?, path))
    };
    let replicas: u16 = if a.scale_out { 2 } else { 1 };
    let mut pids: Vec<(&'static str, u32)> = Vec::new();
    let mut waits = Vec::new();
    for i in 0..replicas {
        let name = SERVES[i as usize];
        let (grpc, http_addr) = serve_addrs(i);
        let (serve_log, serve_log_path) = log(name)?;
        let mut serve = tokio::process::Command::new(&exe);
        serve.arg("serve");
        a.redis.hand_to(&mut serve)?;
        if std::env::var_os(crate::stack::IP_HASH_KEY_ENV).is_none() {
            serve.arg("--ip-hash-key-file").arg(crate::stack::ip_hash_key_file()?);
        }
        serve
            .args(["--grpc-addr", &grpc, "--http-addr", &http_addr])
            .arg("--models-dir")
            .arg(&a.models_dir)
            .stdout(Stdio::from(serve_log.try_clone()?))
            .stderr(Stdio::from(serve_log))
            .kill_on_drop(true);
        let child = serve.spawn().context("starting ecom serve")?;
        pids.extend(child.id().map(|p| (name, p)));
        children.0.push((name.into(), child));
        waits.push((format!("http://{http_addr}/health"), "ecom serve", serve_log_path));
    }
    for i in 0..replicas {
        let name = SINKS[i as usize];
        let (sink_log, sink_log_path) = log(name)?;
        let mut sink = tokio::process::Command::new(&exe);
        sink.arg("sink");
        a.es.hand_to(&mut sink)?;
        a.mongo.hand_to(&mut sink)?;
        sink.args(["--brokers", &a.cluster.brokers])
            .args(["--topic", &names[1], "--invalid-topic", &names[2]])
            .args(["--sessions-topic", &names[3], "--metrics-topic", &names[4], "--deadletter-topic", &names[5]])
            .args(["--index-prefix", &format!("{stem}-events")])
            .args(["--invalid-index-prefix", &format!("{stem}-invalid")])
            .args(["--sessions-index-prefix", &format!("{stem}-sessions")])
            .args(["--metrics-index-prefix", &format!("{stem}-metrics")])
            .args(["--mongo-db", mongo_db, "--group-id", &format!("{stem}-sink")])
            .args(["--metrics-addr", &sink_addr(i)])
            .args(&run.sink_args)
            .stdout(Stdio::from(sink_log.try_clone()?))
            .stderr(Stdio::from(sink_log))
            .kill_on_drop(true);
        let child = sink.spawn().context("starting ecom sink")?;
        pids.extend(child.id().map(|p| (name, p)));
        children.0.push((name.into(), child));
        waits.push((format!("http://{}/health", sink_addr(i)), "ecom sink", sink_log_path));
    }
    if a.scale_out {
        let pid = start_second_taskmanager(&mut children, &log("taskmanager2")?)?;
        pids.push((SECOND_TM, pid));
        wait_taskmanagers(&http, &a.cluster.flink_rest, 2).await?;
    }
    for (url, what, log_path) in &waits {
        wait_http(&http, url, what, log_path, &mut children).await?;
    }
    let procs = Procs::find_with(&pids);
    let kills: Vec<(u64, &'static str, u32)> = match a.kill_after_secs {
        Some(after) => [SECOND_TM, SINKS[1], SERVES[1]]
            .iter()
            .enumerate()
            .filter_map(|(k, name)| Some((after + 5 * k as u64, *name, pids.iter().find(|(n, _)| n == name)?.1)))
            .collect(),
        None => Vec::new(),
    };

    let flink = a.cluster.flink();
    let serve_address = (0..replicas).map(|i| serve_addrs(i).0).collect::<Vec<_>>().join(",");
    let models = std::path::absolute(&a.models_dir).context("the models directory")?;
    let job_args: Vec<String> = crate::bench_job::scratch_job_args(&a.cluster.brokers, &serve_address, names, stem)
        .into_iter()
        .chain(["--catalog-topic".to_string(), names[6].clone()])
        .chain(run.job_args.iter().map(|o| o.replace(MODELS_DIR, &models.to_string_lossy())))
        .chain(a.job_args.iter().cloned())
        .collect();
    let job = flink.submit(&http, a.job_parallelism(), &job_args).await?;
    // Whatever happens from here, the job is cancelled and serve and sink stopped.
    let report = run_job(a, parts, scratch, es, mongo, &flink, &http, &job, &procs, &kills, deadline).await;
    children.stop().await;
    flink.cancel(&http, &job).await;
    report
}

/// Produces the parts into the running job, reads its outputs, probes Elasticsearch and
/// counts the stores.
#[allow(clippy::too_many_arguments)]
async fn run_job(
    a: &E2eBench,
    parts: &[Part],
    scratch: &Scratch,
    es: &crate::stack::EsHttp,
    mongo: &mongodb::Client,
    flink: &crate::demo::Flink<'_>,
    http: &reqwest::Client,
    job: &str,
    procs: &Procs,
    kills: &[(u64, &'static str, u32)],
    deadline: Instant,
) -> anyhow::Result<Report> {
    let Scratch { names, stem, mongo_db } = scratch;
    let mut watch = flink.watch(http, job, &std::env::temp_dir());
    let total: u64 = parts.iter().map(|p| p.records).sum();
    let mut gen = GenerateArgs::with(total, 1, 0.02, None, &a.cluster.brokers);
    gen.topic = names[0].clone();
    gen.catalog_topic = names[6].clone();
    gen.truth_topic = names[7].clone();
    gen.quiet = true;
    // ~1 s of event time per record at most: the whole run lies in the past.
    gen.start_ms = Some(now_ms() - 2 * 3_600_000 - total as i64 * 1_000);
    gen.rate_steps = parts.iter().filter_map(|p| p.rate.map(|r| (r, p.records))).collect();
    // Ends the generator, the reader and the CPU sampler, on every way out.
    let stop = crate::bench_job::StopOnDrop(Arc::new(AtomicBool::new(false)));
    gen.stop = Some(stop.0.clone());

    // CPU of every process, sampled every 250 ms: each part's share is cut out afterwards by
    // its records' produce times.
    let sampler = {
        let (procs, stop) = (procs.clone(), stop.0.clone());
        tokio::spawn(async move {
            let mut series: Vec<(i64, Vec<(&'static str, f64)>)> = Vec::new();
            loop {
                let mut now = procs.cpu_seconds();
                // A process killed on purpose reads 0 from then on: it keeps what it had used.
                if let Some((_, last)) = series.last() {
                    for (n, l) in now.iter_mut().zip(last) {
                        n.1 = n.1.max(l.1);
                    }
                }
                series.push((now_ms(), now));
                if stop.load(Ordering::Relaxed) {
                    break series;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let (probe_tx, probe_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut reader = {
        let (brokers, topics, stop) = (a.cluster.brokers.clone(), [names[1].clone(), names[2].clone()], stop.0.clone());
        let every = a.probe_every.max(1);
        tokio::task::spawn_blocking(move || read_outputs(&brokers, &topics, total, every, probe_tx, &stop))
    };
    let probe = tokio::spawn(probe_search(es.clone(), format!("{stem}-events-*"), probe_rx));
    let mut producing = crate::bench_job::generate_on_a_thread(gen)?;
    // The kills, timed from here (the generator's start), each logged as it happens.
    let killer = {
        let kills = kills.to_vec();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut done = Vec::new();
            for (after, name, pid) in kills {
                tokio::time::sleep_until((start + Duration::from_secs(after)).into()).await;
                let ok = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                eprintln!(
                    "killed {name} (pid {pid}) {after} s after the first record{}",
                    if ok { "" } else { ": kill failed" }
                );
                done.push((name, after, ok));
            }
            done
        })
    };
    // Every record out of the job, or the first failure of the generator, the reader or the
    // job, or the deadline.
    let mut gen_summary = None;
    let outputs = loop {
        tokio::select! {
            o = &mut reader => break o.context("reading the job's outputs panicked")??,
            g = &mut producing, if gen_summary.is_none() => match g {
                Ok(Ok(summary)) => gen_summary = Some(summary),
                Ok(Err(e)) => return Err(e.context("producing")),
                Err(_) => bail!("the generator's thread ended without a result"),
            },
            ended = watch.ended() => return Err(ended.into()),
            _ = tokio::time::sleep_until(deadline.into()) => {
                bail!("timed out after {} s before every record came out of the job", a.timeout_secs)
            }
        }
    };
    let gen_summary = match gen_summary {
        Some(s) => s,
        None => producing.await.context("the generator's thread ended without a result")?.context("producing")?,
    };
    let first_produced = gen_summary.first_produced_ms;
    let probed = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), probe)
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {} s probing Elasticsearch", a.timeout_secs))?
        .context("the search probe panicked")?
        .context("probing Elasticsearch")?;

    // The stores: every enriched event and dead letter, counted in each.
    let (mut es_events, mut es_invalid, mut mongo_events, mut mongo_invalid) = (0, 0, 0, 0);
    let db = mongo.database(mongo_db);
    let counts_deadline =
        Instant::now() + Duration::from_secs(300).min(deadline.saturating_duration_since(Instant::now()));
    while Instant::now() < counts_deadline {
        let _ = es.client.post(format!("{}/{stem}-*/_refresh", es.base)).send().await;
        es_events = es_count(es, &format!("{stem}-events-*"), None).await?;
        es_invalid = es_count(es, &format!("{stem}-invalid-*"), None).await?;
        mongo_events =
            db.collection::<mongodb::bson::Document>("events").count_documents(mongodb::bson::doc! {}).await?;
        mongo_invalid =
            db.collection::<mongodb::bson::Document>("invalid").count_documents(mongodb::bson::doc! {}).await?;
        if es_events >= outputs.distinct
            && mongo_events >= outputs.distinct
            && es_invalid >= outputs.invalid
            && mongo_invalid >= outputs.invalid
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(stop);
    let killed = if killer.is_finished() {
        killer.await.context("the killer panicked")?
    } else {
        killer.abort();
        bail!("the run ended before every kill of --kill-after-secs was made: give it a longer ladder");
    };
    if let Some((name, _, _)) = killed.iter().find(|k| !k.2) {
        bail!("could not kill {name}");
    }
    let cpu_series = sampler.await.context("the CPU sampler panicked")?;
    let peak_rss_mb = procs.peak_rss_mb();
    let job_status = watch.finish().await;
    let sink_deadletters = crate::demo::end_offsets(&a.cluster.brokers, &[names[5].as_str()])?.values().sum::<i64>();

    // The burst: the events the sink wrote from its start to the last write, over that span (a
    // backlog left by the ladder is written in it too: what the stores took at full speed).
    let burst_from_ms =
        first_produced + (parts.iter().filter_map(|p| Some(p.records as f64 / p.rate?)).sum::<f64>() * 1000.0) as i64;
    let burst = if parts.last().is_some_and(|p| p.rate.is_none()) {
        let last: Value = es
            .client
            .post(format!("{}/{stem}-events-*/_search", es.base))
            .json(&json!({"size": 0, "aggs": {"last": {"max": {"field": "indexed_at"}}}}))
            .send()
            .await?
            .json()
            .await?;
        let written = es_count(es, &format!("{stem}-events-*"), Some(burst_from_ms)).await?;
        last["aggregations"]["last"]["value"].as_f64().map(|last| (written, last as i64 - burst_from_ms))
    } else {
        None
    };

    // Events that got a serve method's declared fallback: a run whose calls failed is fast for
    // the wrong reason.
    let mut fallbacks = [0; 3];
    for (n, field) in fallbacks.iter_mut().zip(FALLBACKS) {
        *n = es_count_where(es, &format!("{stem}-events-*"), json!({"term": {field: true}})).await?;
    }

    let mut samples = outputs.samples;
    let by_id: std::collections::HashMap<&str, usize> =
        outputs.sample_ids.iter().map(|(id, i)| (id.as_str(), *i)).collect();
    for (id, sink_write, searchable) in probed {
        if let Some(&i) = by_id.get(id.as_str()) {
            samples[i].spans[3] = Some(sink_write - samples[i].produced);
            samples[i].spans[4] = Some(searchable - samples[i].produced);
        }
    }
    // Each part's CPU: between the samples nearest its planned start and end after the first
    // record (the generator keeps to its schedule from there); the full-speed part's until the
    // stores held everything.
    let at = |t: i64| {
        let i = cpu_series.partition_point(|(when, _)| *when < t).min(cpu_series.len() - 1);
        &cpu_series[i].1
    };
    let mut from = 0.0;
    let mut cpu = Vec::new();
    for p in parts {
        let to = p.rate.map_or(f64::INFINITY, |r| from + p.records as f64 / r);
        let start = at(first_produced + (from * 1000.0) as i64);
        let end = if to.is_finite() {
            at(first_produced + (to * 1000.0) as i64)
        } else {
            &cpu_series[cpu_series.len() - 1].1
        };
        cpu.push(end.iter().zip(start).map(|((n, after), (_, before))| (*n, after - before)).collect());
        from = to;
    }
    Ok(Report {
        samples,
        first_produced,
        cpu,
        peak_rss_mb,
        produced: gen_summary.produced,
        enriched: outputs.enriched,
        distinct_enriched: outputs.distinct,
        invalid: outputs.invalid,
        es_events,
        es_invalid,
        mongo_events,
        mongo_invalid,
        sink_deadletters: sink_deadletters as u64,
        fallbacks,
        burst,
        job_restarts: job_status.restarts,
        killed: killed.into_iter().map(|(n, after, _)| (n, after)).collect(),
    })
}

/// Starts a second TaskManager of the stack's cluster as a child (one slot, its own metrics
/// ports) and returns its pid.
fn start_second_taskmanager(children: &mut Children, log: &(std::fs::File, PathBuf)) -> anyhow::Result<u32> {
    let home = std::env::var_os("FLINK_HOME")
        .context("--scale-out starts a second TaskManager from $FLINK_HOME with $FLINK_CONF_DIR: source dev/env.sh")?;
    std::env::var_os("FLINK_CONF_DIR").context("--scale-out needs $FLINK_CONF_DIR (source dev/env.sh)")?;
    let mut tm = tokio::process::Command::new(PathBuf::from(home).join("bin/taskmanager.sh"));
    tm.arg("start-foreground")
        .args(["-D", "taskmanager.numberOfTaskSlots=1", "-D", "metrics.reporter.prom.port=9251-9259"])
        .stdout(Stdio::from(log.0.try_clone()?))
        .stderr(Stdio::from(log.0.try_clone()?))
        .kill_on_drop(true);
    let child = tm.spawn().context("starting a second TaskManager")?;
    let pid = child.id().context("the second TaskManager exited at once")?;
    children.0.push(("taskmanager 2".into(), child));
    eprintln!("second TaskManager started (pid {pid}, log {})", log.1.display());
    Ok(pid)
}

/// Waits until the cluster has `n` TaskManagers registered (60 s).
async fn wait_taskmanagers(http: &reqwest::Client, rest: &str, n: usize) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let v: Value = match http.get(format!("{rest}/taskmanagers")).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        let have = v["taskmanagers"].as_array().map_or(0, Vec::len);
        if have >= n {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("the cluster at {rest} has {have} TaskManagers after 60 s, not {n}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Documents in `index`, those written at or after `written_from_ms` when given.
async fn es_count(es: &crate::stack::EsHttp, index: &str, written_from_ms: Option<i64>) -> anyhow::Result<u64> {
    let query = match written_from_ms {
        Some(t) => json!({"range": {"indexed_at": {"gte": t}}}),
        None => json!({"match_all": {}}),
    };
    es_count_where(es, index, query).await
}

/// Documents in `index` that match `query`.
async fn es_count_where(es: &crate::stack::EsHttp, index: &str, query: Value) -> anyhow::Result<u64> {
    let query = json!({ "query": query });
    let r: Value = es
        .client
        .post(format!("{}/{index}/_count?ignore_unavailable=true&allow_no_indices=true", es.base))
        .json(&query)
        .send()
        .await
        .context("counting documents in Elasticsearch")?
        .json()
        .await?;
    Ok(r["count"].as_u64().unwrap_or(0))
}

/// What the bench's read_committed consumer saw.
struct Outputs {
    samples: Vec<Sample>,
    /// Probed event id → its index in `samples`.
    sample_ids: Vec<(String, usize)>,
    enriched: u64,
    distinct: u64,
    invalid: u64,
}

/// Reads the enriched and invalid topics (read_committed) until `total` records came out,
/// handing every `every`-th enriched event to the search probe.
fn read_outputs(
    brokers: &str,
    topics: &[String; 2],
    total: u64,
    every: u64,
    probe: tokio::sync::mpsc::UnboundedSender<String>,
    stop: &AtomicBool,
) -> anyhow::Result<Outputs> {
    let consumer: BaseConsumer = ecom_sink::kafka::client(brokers)?
        .set("group.id", format!("{}-count", topics[0]))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()?;
    // Assigned, not subscribed: a new group's first join waits ~3 s, which would count as
    // latency of the first records.
    let md = consumer.fetch_metadata(None, Duration::from_secs(10)).context("reading Kafka metadata")?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for t in md.topics().iter().filter(|t| topics.iter().any(|x| x == t.name())) {
        for p in t.partitions() {
            tpl.add_partition_offset(t.name(), p.id(), rdkafka::Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    let mut ids = HashSet::new();
    let mut out = Outputs { samples: Vec::new(), sample_ids: Vec::new(), enriched: 0, distinct: 0, invalid: 0 };
    while out.enriched + out.invalid < total {
        if stop.load(Ordering::Relaxed) {
            bail!("stopped with {} of {total} records out of the job", out.enriched + out.invalid);
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else { continue };
        let msg = msg.context("reading the job's outputs")?;
        let visible = now_ms();
        if msg.topic() != topics[0] {
            out.invalid += 1;
            continue;
        }
        let e = EnrichedEvent::decode(msg.payload().unwrap_or_default())?;
        out.enriched += 1;
        let id = e.event.as_ref().map(|x| x.event_id.clone()).unwrap_or_default();
        if ids.insert(id.clone()) {
            out.distinct += 1;
        }
        if e.produced_at_ms <= 0 {
            continue;
        }
        let p = e.produced_at_ms;
        out.samples.push(Sample {
            produced: p,
            spans: [Some(e.ingested_at_ms - p), Some(e.enriched_at_ms - p), Some(visible - p), None, None],
        });
        if out.enriched.is_multiple_of(every) {
            out.sample_ids.push((id.clone(), out.samples.len() - 1));
            let _ = probe.send(id);
        }
    }
    Ok(out)
}

/// Asks Elasticsearch every 100 ms which of the probed events it can find (a search sees only
/// refreshed documents) until the reader is done and none is left, or 120 s pass without one
/// found. Gives (event id, the sink's write time, the time the search that found it returned).
async fn probe_search(
    es: crate::stack::EsHttp,
    index: String,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> anyhow::Result<Vec<(String, i64, i64)>> {
    let mut pending: Vec<String> = Vec::new();
    let mut found = Vec::new();
    let mut open = true;
    let mut last_found = Instant::now();
    loop {
        while let Ok(p) = rx.try_recv() {
            pending.push(p);
        }
        if open && rx.is_closed() && rx.is_empty() {
            open = false;
        }
        if !open && pending.is_empty() {
            return Ok(found);
        }
        if last_found.elapsed() > Duration::from_secs(120) && !pending.is_empty() {
            eprintln!("warning: the search probe gave up on {} events not found for 120 s", pending.len());
            return Ok(found);
        }
        // Every pending id each round, 1,000 to a request, so none waits behind the others.
        let mut hits = std::collections::HashMap::new();
        let mut returned = now_ms();
        for chunk in pending.chunks(1_000) {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let r = es
                .client
                .post(format!("{}/{index}/_search?ignore_unavailable=true&allow_no_indices=true", es.base))
                .json(&json!({"size": ids.len(), "_source": ["indexed_at"], "query": {"ids": {"values": ids}}}))
                .send()
                .await;
            returned = now_ms();
            if let Ok(r) = r {
                let v: Value = r.json().await.unwrap_or(Value::Null);
                for h in v["hits"]["hits"].as_array().into_iter().flatten() {
                    if let (Some(id), Some(written)) = (h["_id"].as_str(), h["_source"]["indexed_at"].as_i64()) {
                        hits.insert(id.to_string(), written);
                    }
                }
            }
        }
        if !hits.is_empty() {
            last_found = Instant::now();
        }
        pending.retain(|id| match hits.get(id) {
            Some(&written) => {
                found.push((id.clone(), written, returned));
                false
            }
            None => true,
        });
        tokio::time::sleep(Duration::from_millis(PROBE_EVERY_MS)).await;
    }
}

fn pct(v: &[i64], q: f64) -> Option<i64> {
    (!v.is_empty()).then(|| v[((v.len() as f64 * q) as usize).min(v.len() - 1)])
}

impl Report {
    /// The samples of each part, by produce time after the first record. A part ends half a
    /// record's interval before its planned end: its last record is due one interval before,
    /// the next part's first at the end.
    fn per_part<'a>(&'a self, parts: &'a [Part]) -> Vec<(&'a Part, Vec<Sample>)> {
        let mut bounds = Vec::new();
        let (mut planned, mut at) = (0.0, 0.0);
        for p in parts {
            let end = match p.rate {
                Some(r) => {
                    planned += p.records as f64 / r;
                    planned - 0.5 / r
                }
                None => f64::INFINITY,
            };
            bounds.push((p, at, end));
            at = end;
        }
        bounds
            .into_iter()
            .map(|(p, from, to)| {
                let s = self
                    .samples
                    .iter()
                    .filter(|s| {
                        let t = (s.produced - self.first_produced) as f64 / 1000.0;
                        t >= from && t < to
                    })
                    .copied()
                    .collect();
                (p, s)
            })
            .collect()
    }

    fn stage(samples: &[Sample], stage: usize) -> Vec<i64> {
        let mut v: Vec<i64> = samples.iter().filter_map(|s| s.spans[stage]).collect();
        v.sort_unstable();
        v
    }

    /// Whether a rate step kept up all the way to the stores: the median searchable lag of its
    /// last fifth within 10 s and at most 1 s + 25 % above its first fifth's (a queue growing
    /// anywhere on the path shows as a lag that grows; one inherited from a step before as a lag
    /// past 10 s).
    fn sustained(samples: &[Sample]) -> Option<(bool, i64, i64)> {
        let probed: Vec<Sample> = samples.iter().filter(|s| s.spans[4].is_some()).copied().collect();
        let n = probed.len();
        if n < 10 {
            return None;
        }
        let samples = &probed;
        let median = |s: &[Sample]| pct(&Self::stage(s, 4), 0.5).unwrap_or(0);
        let (first, last) = (median(&samples[..n / 5]), median(&samples[n - n / 5..]));
        Some((last <= SUSTAINED_MAX_LAG_MS && last - first <= 1_000 + first / 4, first, last))
    }

    /// Prints the report; false when the counts do not reconcile.
    fn print(&self, a: &E2eBench, parts: &[Part], run: &Run) -> bool {
        let per_part = self.per_part(parts);
        let lost = self.produced as i64 - (self.enriched + self.invalid) as i64;
        let dup = self.enriched - self.distinct_enriched;
        let reconciled = lost == 0
            && dup == 0
            && self.es_events == self.distinct_enriched
            && self.mongo_events == self.distinct_enriched
            && self.es_invalid == self.invalid
            && self.mongo_invalid == self.invalid
            && self.sink_deadletters == 0;
        if a.json {
            let rows: Vec<Value> = per_part
                .iter()
                .filter(|(p, _)| p.measured)
                .map(|(p, s)| {
                    let stages: serde_json::Map<String, Value> = STAGES
                        .iter()
                        .enumerate()
                        .map(|(i, name)| {
                            let v = Self::stage(s, i);
                            (name.to_string(), json!({"p50_ms": pct(&v, 0.5), "p99_ms": pct(&v, 0.99), "p999_ms": pct(&v, 0.999), "samples": v.len()}))
                        })
                        .collect();
                    json!({"part": p.label, "rate": p.rate, "records": p.records, "stages": stages,
                           "sustained": Self::sustained(s).map(|x| x.0)})
                })
                .collect();
            println!(
                "{}",
                json!({"design": run.name, "job_args": run.job_args, "sink_args": run.sink_args, "parts": rows, "produced": self.produced, "enriched": self.enriched, "invalid": self.invalid,
                       "es_events": self.es_events, "mongo_events": self.mongo_events,
                       "es_invalid": self.es_invalid, "mongo_invalid": self.mongo_invalid,
                       "sink_deadletters": self.sink_deadletters, "lost": lost, "duplicated": dup,
                       "fallbacks": FALLBACKS.iter().zip(self.fallbacks).map(|(f, n)| (f.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
                       "reconciled": reconciled, "burst_events_per_s": self.burst_rate(parts),
                       "job_restarts": self.job_restarts,
                       "killed": self.killed.iter().map(|(n, s)| json!({"process": n, "after_s": s})).collect::<Vec<_>>(),
                       "peak_rss_mb": self.peak_rss_mb.iter().map(|(n, m)| (n.to_string(), json!(m))).collect::<serde_json::Map<_, _>>()})
            );
            return reconciled;
        }
        println!(
            "ecom bench e2e, design {}: {} records ({} s warm-up left out), job parallelism {}{}",
            run.name,
            self.produced,
            a.warmup_seconds,
            a.job_parallelism(),
            match (run.job_args.is_empty(), run.sink_args.is_empty()) {
                (true, true) => String::new(),
                _ => format!("; job {:?}, sink {:?}", run.job_args.join(" "), run.sink_args.join(" ")),
            }
        );
        println!();
        println!("latency from produced_at, ms: p50 / p99 / p99.9");
        print!("{:<22}", "part");
        for s in STAGES {
            print!(" {s:>20}");
        }
        println!("  {:>9}", "sustained");
        for (p, s) in per_part.iter().filter(|(p, _)| p.measured) {
            print!("{:<22}", p.label);
            for i in 0..STAGES.len() {
                let v = Self::stage(s, i);
                let cell = match (pct(&v, 0.5), pct(&v, 0.99), pct(&v, 0.999)) {
                    (Some(a), Some(b), Some(c)) => format!("{a} / {b} / {c}"),
                    _ => "-".into(),
                };
                print!(" {cell:>20}");
            }
            let sustained = match (p.rate, Self::sustained(s)) {
                (None, _) => "-".to_string(),
                (Some(_), Some((ok, first, last))) => format!("{} ({first}→{last})", if ok { "yes" } else { "no" }),
                (Some(_), None) => "?".into(),
            };
            println!("  {sustained:>9}");
        }
        let best = self.best_sustained(parts);
        println!(
            "(ingested, enriched: the job's stamps; visible: read by a read_committed consumer, after the checkpoint that"
        );
        println!(
            " commits it; sink write: the sink's clock as it built the write; searchable: found by a search, asked every"
        );
        println!(
            " {PROBE_EVERY_MS} ms for one enriched event in {}; sustained: the step's searchable lag, median of its last fifth against its",
            a.probe_every
        );
        println!(" first (ms): within 10 s and at most 1 s + 25 % above the first)");
        println!();
        match best {
            Some(r) => println!("highest sustained rate of the ladder: {r:.0} records/s"),
            None => println!("highest sustained rate of the ladder: none of the steps"),
        }
        if let Some(rate) = self.burst_rate(parts) {
            println!(
                "full speed: {rate:.0} events/s into the stores (documents written from the burst's start to the last write)"
            );
        }
        println!();
        println!("CPU per 1,000 records, ms (user + system; bench: this process, the generator and the reader):");
        let names: Vec<&str> = self.cpu.first().map(|c| c.iter().map(|(n, _)| *n).collect()).unwrap_or_default();
        println!("{:<22}{}  {:>8}", "part", names.iter().map(|n| format!("{n:>10}")).collect::<String>(), "total");
        for (p, cpu) in parts.iter().zip(&self.cpu) {
            if !p.measured {
                continue;
            }
            let per_k = |s: f64| s * 1000.0 / (p.records.max(1) as f64 / 1000.0);
            let cells: String = cpu.iter().map(|(_, s)| format!("{:>10.0}", per_k(*s))).collect();
            let total: f64 = cpu.iter().map(|(_, s)| per_k(*s)).sum();
            println!("{:<22}{cells}  {total:>8.0}", p.label);
        }
        println!("(the full-speed part runs until the stores hold every record)");
        println!(
            "peak memory (VmHWM, MB; serve and sink since this run started, the rest since they started): {}",
            self.peak_rss_mb.iter().map(|(n, m)| format!("{n} {m:.0}")).collect::<Vec<_>>().join(", ")
        );
        println!();
        println!("produced                    {:>9}", self.produced);
        println!(
            "enriched + invalid          {:>9}   ({} + {}; lost {lost})",
            self.enriched + self.invalid,
            self.enriched,
            self.invalid
        );
        println!("duplicated enriched         {:>9}", dup);
        println!("Elasticsearch events        {:>9}   dead letters {}", self.es_events, self.es_invalid);
        println!("MongoDB events              {:>9}   dead letters {}", self.mongo_events, self.mongo_invalid);
        println!("sink dead letters           {:>9}", self.sink_deadletters);
        println!(
            "serve fallbacks             {:>9}   (guard / recommend / score: {} / {} / {} events)",
            self.fallbacks.iter().sum::<u64>(),
            self.fallbacks[0],
            self.fallbacks[1],
            self.fallbacks[2]
        );
        println!("Flink job restarts          {:>9}", self.job_restarts);
        for (name, after) in &self.killed {
            println!("killed (SIGKILL)            {name:>9}   {after} s after the first record");
        }
        println!("reconciled: {}", if reconciled { "yes" } else { "no" });
        reconciled
    }

    /// The highest rate of the ladder whose backlog stayed bounded.
    fn best_sustained(&self, parts: &[Part]) -> Option<f64> {
        self.per_part(parts)
            .iter()
            .filter(|(p, s)| p.measured && p.rate.is_some() && Self::sustained(s).is_some_and(|x| x.0))
            .filter_map(|(p, _)| p.rate)
            .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))))
    }

    /// CPU ms per 1,000 records over every process, per part.
    fn cpu_per_k(&self, parts: &[Part]) -> Vec<f64> {
        parts
            .iter()
            .zip(&self.cpu)
            .map(|(p, cpu)| cpu.iter().map(|(_, s)| s * 1000.0 / (p.records.max(1) as f64 / 1000.0)).sum())
            .collect()
    }

    fn burst_rate(&self, parts: &[Part]) -> Option<f64> {
        parts.last().filter(|p| p.rate.is_none())?;
        self.burst.filter(|(_, ms)| *ms > 0).map(|(docs, ms)| docs as f64 * 1000.0 / ms as f64)
    }
}

/// The designs next to each other: per measured part, p50 / p99 of produced → enriched and
/// produced → searchable and the CPU per 1,000 records; then the rates.
fn side_by_side(parts: &[Part], reports: &[(Run, Report, bool)]) {
    let cell = |v: &[i64]| match (pct(v, 0.5), pct(v, 0.99)) {
        (Some(a), Some(b)) => format!("{a} / {b}"),
        _ => "-".into(),
    };
    println!();
    println!("side by side (p50 / p99 ms from produced_at; CPU: ms per 1,000 records over all processes)");
    let w = reports.iter().map(|(r, _, _)| r.name.len()).max().unwrap_or(0).max(8);
    println!("{:<22} {:<w$} {:>18} {:>18} {:>10}", "part", "design", "enriched", "searchable", "CPU");
    let per: Vec<_> = reports.iter().map(|(d, r, _)| (d, r.per_part(parts), r.cpu_per_k(parts))).collect();
    for (i, p) in parts.iter().enumerate().filter(|(_, p)| p.measured) {
        for (d, pp, cpu) in &per {
            let s = &pp[i].1;
            println!(
                "{:<22} {:<w$} {:>18} {:>18} {:>10.0}",
                p.label,
                d.name,
                cell(&Report::stage(s, 1)),
                cell(&Report::stage(s, 4)),
                cpu[i]
            );
        }
    }
    for (d, r, _) in reports {
        println!(
            "{:<w$} highest sustained rate {:>8}   full speed into the stores {:>8} events/s",
            d.name,
            r.best_sustained(parts).map_or("none".into(), |x| format!("{x:.0}/s")),
            r.burst_rate(parts).map_or("-".into(), |x| format!("{x:.0}"))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variant_names_its_job_and_sink_options() {
        let r = parse_variant("fast=--checkpoint-interval-ms 500  sink: --es-refresh-interval-ms 250").unwrap();
        assert_eq!(r.name, "fast");
        assert_eq!(r.job_args, ["--checkpoint-interval-ms", "500"]);
        assert_eq!(r.sink_args, ["--es-refresh-interval-ms", "250"]);
        let sink_only = parse_variant("r250=sink: --es-refresh-interval-ms 250").unwrap();
        assert!(sink_only.job_args.is_empty());
        assert!(parse_variant("Fast=--x 1").is_err(), "names go into topic and index names");
        assert!(parse_variant("--checkpoint-interval-ms 500").is_err());
        assert_eq!(Run::from(Design::Naive).sink_args, ["--batch-max", "1"]);
    }
}
