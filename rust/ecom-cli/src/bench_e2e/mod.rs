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
use crate::demo::ClusterArgs;
use crate::generate::GenerateArgs;
use crate::services::{wait_http, Children};
use anyhow::{bail, Context};
use ecom_core::now_ms;
use ecom_proto::v1::EnrichedEvent;
use prost::Message as _;
use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod job;
mod outputs;
mod report;
use job::{run_job, start_second_taskmanager, wait_taskmanagers};
use outputs::*;
use report::side_by_side;

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
    /// and the sink's --batch-size 1 (one write request per document to each store).
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
            Design::Naive => &["--batch-size", "1"],
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
        Run {
            name: clap::ValueEnum::to_possible_value(&d).expect("every design is a value").get_name().into(),
            job_args: owned(d.job_args()),
            sink_args: owned(d.sink_args()),
        }
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
/// The bench's own serve and sink listen below the kernel's ephemeral range (32768 and up), so
/// no outgoing connection or randomly bound port (a TaskManager's) can hold them.
fn serve_addrs(i: u16) -> (String, String) {
    (format!("127.0.0.1:{}", 28172 + i), format!("127.0.0.1:{}", 18172 + i))
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
    if ecom_model::current(&a.models_dir).is_none() {
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
        names: ["raw", "enriched", "invalid", "sessions", "metrics", "quality", "sink-deadletter", "catalog", "truth"]
            .map(topic),
        stem: id.clone(),
        mongo_db: id.replace('-', "_"),
    };
    let Scratch { names, stem, mongo_db } = &scratch;
    let admin = crate::bench_job::scratch_topics(&a.cluster.brokers, names).await?;
    let es = a.es.http()?;
    let mongo = mongodb::Client::with_uri_str(a.mongo.url()?.expose()).await?;
    let result = measure(a, run, parts, &scratch, &es, &mongo, deadline).await;

    // Scratch data goes whatever happened.
    let topics: Vec<&str> = names.iter().map(String::as_str).collect();
    let _ = admin.delete_topics(&topics, &AdminOptions::new()).await;
    let _ = es.client.delete(format!("{}/{stem}-*", es.base)).send().await;
    for kind in ["events", "sessions", "metrics", "invalid", "quality"] {
        let _ = es.client.delete(format!("{}/_index_template/{stem}-{kind}", es.base)).send().await;
    }
    let _ = mongo.database(mongo_db).drop().await;
    result
}

/// One design's scratch resources: topics (raw, enriched, invalid, sessions, metrics,
/// quality, the sink's dead letters, catalog, truth), the stem of its indices, groups and transactional
/// ids, and its MongoDB database.
struct Scratch {
    names: [String; 9],
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
        let (_, serve_log_path) = log(name)?;
        let serve = crate::services::serve_command(&exe, &a.redis, &a.models_dir, &grpc, &http_addr)?;
        let child = crate::services::spawn_logged(serve, "serve", &serve_log_path)?;
        pids.extend(child.id().map(|p| (name, p)));
        children.0.push((name.into(), child));
        waits.push((format!("http://{http_addr}/health"), "ecom serve", serve_log_path));
    }
    for i in 0..replicas {
        let name = SINKS[i as usize];
        let (_, sink_log_path) = log(name)?;
        let mut sink = crate::services::sink_command(&exe, &a.es, &a.mongo, &a.cluster.brokers, &sink_addr(i))?;
        sink.args(["--enriched-topic", &names[1], "--invalid-topic", &names[2]])
            .args(["--sessions-topic", &names[3], "--metrics-topic", &names[4]])
            .args(["--quality-topic", &names[5], "--deadletter-topic", &names[6]])
            .args(["--index-prefix", &format!("{stem}-events")])
            .args(["--invalid-index-prefix", &format!("{stem}-invalid")])
            .args(["--quality-index-prefix", &format!("{stem}-quality")])
            .args(["--sessions-index-prefix", &format!("{stem}-sessions")])
            .args(["--metrics-index-prefix", &format!("{stem}-metrics")])
            .args(["--mongo-db", mongo_db, "--group-id", &format!("{stem}-sink")])
            .args(&run.sink_args);
        let child = crate::services::spawn_logged(sink, "sink", &sink_log_path)?;
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
        .chain(["--catalog-topic".to_string(), names[7].clone()])
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
        assert_eq!(Run::from(Design::Naive).sink_args, ["--batch-size", "1"]);
    }
}
