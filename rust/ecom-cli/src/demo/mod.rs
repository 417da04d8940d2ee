//! `ecom demo`: the whole slice on the local stack. Starts `ecom serve` and `ecom sink`,
//! submits the Flink job, generates events, waits until every raw record is accounted for in
//! Kafka and in both stores, prints a summary and whether it reconciles, then cleans up.
use crate::flink::Flink;
use crate::generate::{self, GenerateArgs, GenerateSummary};
use crate::stack::{EsArgs, EsHttp, MongoArgs, RedisArgs};
use anyhow::{bail, Context};
use ecom_core::now_ms;
use ecom_proto::v1::{EnrichedEvent, EventKind, InvalidEvent, ModelQuality, RejectReason, Session, WindowMetrics};
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod outputs;
mod summary;
use crate::services::{serve_command, sink_command, spawn_logged, wait_http, Children};
pub(crate) use outputs::*;
use summary::{JobState, StoreCounts, Summary};

/// Where the job runs: the jar, the Flink cluster and Kafka (shared by `ecom demo` and
/// `ecom bench job`).
#[derive(Debug, clap::Args)]
pub(crate) struct ClusterArgs {
    /// The Flink job jar.
    #[arg(long, env = "ECOM_JOB_JAR", global = true)]
    pub(crate) jar: Option<PathBuf>,
    /// Flink REST URL.
    #[arg(long, default_value = "http://127.0.0.1:8081", env = "FLINK_REST", global = true)]
    pub(crate) flink_rest: String,
    // stack::KafkaArgs' flag, global here because the demo's subcommands share it.
    /// Kafka bootstrap servers (host:port, comma-separated).
    #[arg(
        long = "bootstrap-servers",
        visible_alias = "brokers",
        default_value = crate::stack::KAFKA_DEFAULT,
        env = "KAFKA_BOOTSTRAP",
        global = true
    )]
    pub(crate) brokers: String,
}

impl ClusterArgs {
    /// The cluster to submit to.
    pub(crate) fn flink(&self) -> Flink<'_> {
        Flink { rest: &self.flink_rest, jar: self.jar.as_deref() }
    }
}

/// Arguments of `ecom demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Number of raw records to generate.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) events: u64,
    /// Share of deliberately malformed records.
    #[arg(long, default_value_t = 0.02)]
    pub(crate) malformed_rate: f64,
    /// Share of exact duplicates of a just-sent event (the job rejects them as DUPLICATE).
    #[arg(long, default_value_t = 0.005)]
    pub(crate) duplicate_rate: f64,
    /// Share of events hours behind the watermark (the job routes them as LATE).
    #[arg(long, default_value_t = 0.002)]
    pub(crate) late_rate: f64,
    /// Share of hostile records (see `ecom generate --help`): stuffed to the record limit,
    /// stamped ~290 s ahead of the clock, padded to near Kafka's request limit.
    #[arg(long, default_value_t = 0.003)]
    pub(crate) hostile_rate: f64,
    /// Sessions per hour at the simulated shop's daily peak. Lower than `ecom generate`'s default
    /// so that N events span hours of event time and sessions close (30-minute gap) within
    /// the run.
    #[arg(long, default_value_t = 600.0)]
    pub(crate) peak_sessions_per_hour: f64,
    #[command(flatten)]
    pub(crate) drift: crate::generate::DriftArgs,
    /// Records per second the generator keeps to. Default: 1000 for ecom demo, where 0 means as
    /// fast as it can (a burst, whose latency figures then measure the queue it builds); 100 in
    /// each scenario of ecom faults, which needs a rate above 0.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Generator seed (default: from the clock, so each run adds new events).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Event time of the first session, ms since epoch (with --seed, repeats a run exactly).
    #[arg(long)]
    pub(crate) start_ms: Option<i64>,
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
    #[command(flatten)]
    pub(crate) es: EsArgs,
    #[command(flatten)]
    pub(crate) mongo: MongoArgs,
    /// Redis (for ecom serve).
    #[command(flatten)]
    pub(crate) redis: RedisArgs,
    /// Models directory ecom serve scores with (written by `ecom train`).
    #[arg(long, default_value = "models", env = "ECOM_MODELS_DIR")]
    pub(crate) models_dir: PathBuf,
    /// Job parallelism.
    #[arg(long, default_value_t = 1)]
    pub(crate) parallelism: u32,
    /// gRPC address of the ecom serve the demo starts (the job calls it there).
    #[arg(long, default_value = "127.0.0.1:50051", env = "ECOM_DEMO_SERVE_ADDR")]
    pub(crate) serve_addr: std::net::SocketAddr,
    /// HTTP address (/health, /metrics) of the ecom serve the demo starts.
    #[arg(long, default_value = "127.0.0.1:8080", env = "ECOM_DEMO_SERVE_HTTP_ADDR")]
    pub(crate) serve_http_addr: std::net::SocketAddr,
    /// HTTP address (/health, /metrics) of the ecom sink the demo starts.
    #[arg(long, default_value = "127.0.0.1:9464", env = "ECOM_DEMO_SINK_HTTP_ADDR")]
    pub(crate) sink_http_addr: std::net::SocketAddr,
    /// Where the demo writes the logs of the processes it starts.
    #[arg(long, env = "ECOM_HOME")]
    pub(crate) state_dir: Option<PathBuf>,
    /// Give up waiting for the pipeline after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub(crate) timeout_secs: u64,
    /// Leave the Flink job running at the end instead of cancelling it.
    #[arg(long)]
    pub(crate) keep_job: bool,
    /// Print the summary as one JSON object on stdout (progress stays on stderr); the exit
    /// code still says whether it reconciled.
    #[arg(long)]
    pub(crate) json: bool,
    /// The live dashboard's address (dev/dashboard starts it; it outlives the demo), printed at
    /// the end when it answers.
    #[arg(long, default_value = "http://127.0.0.1:8088", env = "ECOM_DASHBOARD_URL")]
    pub(crate) dashboard_url: String,
    /// Options for the Flink job after `--` (see its --help), e.g. `-- --checkpoint-interval-ms 5000`.
    #[arg(last = true)]
    pub(crate) job_options: Vec<String>,
}

impl DemoArgs {
    /// The /health URL of the serve the demo starts.
    pub(crate) fn serve_health(&self) -> String {
        format!("http://{}/health", self.serve_http_addr)
    }

    /// The /health URL of the sink the demo starts.
    pub(crate) fn sink_health(&self) -> String {
        format!("http://{}/health", self.sink_http_addr)
    }

    /// `<state dir>/<sub>`, created: where the logs of the processes a run starts go.
    pub(crate) fn logs(&self, sub: &str) -> anyhow::Result<PathBuf> {
        let logs = crate::stack::state_dir(self.state_dir.as_deref()).join(sub);
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        Ok(logs)
    }

    /// Fails when something already listens where this run's serve and sink will: it would
    /// answer the health checks in place of the ones the run starts (which could not bind).
    pub(crate) async fn ports_free(&self) -> anyhow::Result<()> {
        for (name, addr, flag) in [
            ("serve", self.serve_addr, "--serve-addr"),
            ("serve", self.serve_http_addr, "--serve-http-addr"),
            ("sink", self.sink_http_addr, "--sink-http-addr"),
        ] {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Err(crate::exit::config(format!(
                    "{addr} is already taken, e.g. by another ecom {name} or demo: stop it (ss -ltnp 'sport = :{}') or give another {flag}",
                    addr.port()
                )));
            }
        }
        Ok(())
    }

    /// The job's options: the cluster's brokers and this run's serve, then those after `--`.
    pub(crate) fn job_args(&self) -> Vec<String> {
        let serve = self.serve_addr.to_string();
        let mut args: Vec<String> =
            ["--bootstrap-servers", &self.cluster.brokers, "--serve-address", &serve].map(String::from).to_vec();
        args.extend(self.job_options.iter().cloned());
        args
    }
}

/// The demo's records per second when --rate is not given.
const DEMO_RATE: f64 = 1_000.0;

use ecom_core::topics::{ENRICHED, INVALID, METRICS, QUALITY, RAW, SESSIONS};

fn step(msg: &str) {
    eprintln!("==> {msg}");
}

pub(crate) async fn run(a: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let a = std::sync::Arc::new(a);
    let logs = a.logs("demo")?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;

    step("checking the local stack");
    crate::check::require_servers(&a.cluster, &a.es, &a.mongo, &a.redis, &http).await?;
    let Some(model) = ecom_model::current(&a.models_dir) else {
        bail!(
            "no model in {} (models/CURRENT): train one first, e.g. `ecom generate --events 300000 --out DATA && ecom train --from DATA --models-dir {0}` (dev/demo does this for you)",
            a.models_dir.display()
        );
    };
    eprintln!("    ecom serve scores with model {model} from {}", a.models_dir.display());

    step("starting ecom serve and ecom sink");
    a.ports_free().await?;
    let exe = std::env::current_exe().context("locating the ecom binary")?;
    let mut children = Children(Vec::new());
    for name in ["serve", "sink"] {
        children.0.push((name.to_string(), spawn_service(&exe, name, &a, &logs)?));
    }
    wait_http(&http, &a.serve_health(), "ecom serve", &logs.join("serve.log"), &mut children).await?;
    wait_http(&http, &a.sink_health(), "ecom sink", &logs.join("sink.log"), &mut children).await?;

    step("submitting the Flink job");
    let flink = a.cluster.flink();
    let job_args = a.job_args();
    warn_unread_raw(&a.cluster.brokers, &job_args);
    let job = flink.submit(&http, a.parallelism, &job_args).await?;
    // Every way out from here cancels the job; --keep-job keeps it after a run that got through.
    let ran = submitted(&a, &http, &job, &mut children, &logs, started).await;
    children.stop().await;
    match &ran {
        Ok(s) if s.job.kept => eprintln!("leaving Flink job {job} running (--keep-job)"),
        _ => flink.cancel(&http, &job).await,
    }
    let summary = ran?;
    if a.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        summary.print();
    }
    if summary.reconciled {
        Ok(())
    } else {
        std::process::exit(crate::exit::UNRECONCILED.into());
    }
}

/// The run once the job is submitted: generates, waits until every record is accounted for in
/// Kafka and in both stores, and sums it up. Stops early, with the job's own story, when the
/// job ends while it waits.
async fn submitted(
    a: &std::sync::Arc<DemoArgs>,
    http: &reqwest::Client,
    job: &str,
    children: &mut Children,
    logs: &std::path::Path,
    started: Instant,
) -> anyhow::Result<Summary> {
    let flink = a.cluster.flink();
    // Remember where the output topics end now: this run's results come after.
    let out_start = end_offsets(&a.cluster.brokers, &[ENRICHED, INVALID, SESSIONS, METRICS, QUALITY])?;

    step(&format!("generating {} events into {RAW}", a.events));
    let seed = a.seed.unwrap_or_else(|| now_ms() as u64);
    // Sessions last up to ~an hour of event time: start far enough back to end before now.
    let start_ms = a.start_ms.unwrap_or_else(|| {
        // ~6 s of event time per event covers the quietest hours at the default traffic.
        now_ms() - 2 * 3_600_000 - a.events as i64 * 6_000
    });
    let rate = Some(a.rate.unwrap_or(DEMO_RATE)).filter(|r| *r > 0.0);
    let mut gen_args = GenerateArgs::with(a.events, seed, a.malformed_rate, Some(start_ms), &a.cluster.brokers);
    gen_args.duplicate_rate = a.duplicate_rate;
    gen_args.late_rate = a.late_rate;
    gen_args.hostile_rate = a.hostile_rate;
    gen_args.peak_sessions_per_hour = a.peak_sessions_per_hour;
    gen_args.drift = a.drift.clone();
    gen_args.rate = rate;
    let stop_gen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    gen_args.stop = Some(stop_gen.clone());
    let gen_started_ms = now_ms();
    // Generating (paced, it takes a while) and the waits below race the job's watcher: a job
    // that stops ends the demo at once.
    let mut watch = flink.watch(http, job, logs);
    let gen = tokio::select! {
        g = generate::run_with(gen_args, !a.json) => g?,
        ended = watch.ended() => {
            stop_gen.store(true, std::sync::atomic::Ordering::Relaxed);
            return Err(ended.into());
        }
    };
    let gen_done = Instant::now();

    step("waiting for every raw record to come out enriched or invalid");
    // collect_outputs blocks in Kafka polls, so it runs on a thread of its own (left behind
    // when the job stops first: the demo exits).
    let gen = std::sync::Arc::new(gen);
    let collected = {
        let (a, gen, rt) = (a.clone(), gen.clone(), tokio::runtime::Handle::current());
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("collect-outputs".into())
            .spawn(move || {
                let _ = tx.send(rt.block_on(collect_outputs(&a, &gen, &out_start)));
            })
            .context("starting the thread that reads the job's outputs")?;
        async { rx.await.unwrap_or_else(|_| Err(anyhow::anyhow!("reading the job's outputs panicked"))) }
    };
    let outcome = tokio::select! {
        o = collected => o?,
        ended = watch.ended() => return Err(ended.into()),
    };
    let slice_seconds = gen_done.elapsed().as_secs_f64() + gen.seconds;

    step("waiting for Elasticsearch and MongoDB to hold every enriched event and dead letter");
    let stores = tokio::select! {
        s = count_stores(a, &outcome, true) => s?,
        ended = watch.ended() => return Err(ended.into()),
    };
    // Read before the demo cancels the job itself.
    let job_status = watch.finish().await;
    let child_exited = children.exited().map(|(name, status)| format!("{name} exited ({status})"));
    let mut latency_ms: BTreeMap<String, [i64; 2]> =
        outcome.latency_ms.iter().map(|(s, (p50, p99))| (s.to_string(), [*p50, *p99])).collect();
    if let Some((p50, p99)) = indexed_latency(&a.es.http()?, gen_started_ms).await {
        latency_ms.insert("indexed by the sink".into(), [p50, p99]);
    }
    let dashboard_url = a.dashboard_url.trim_end_matches('/').to_string();
    let dashboard = match http.get(format!("{dashboard_url}/health")).send().await {
        Ok(r) if r.status().is_success() => Some(dashboard_url.clone()),
        _ => None,
    };
    let live_quality = summary::LiveQuality::of(&outcome.decision_scores, &a.models_dir);
    let mut summary = Summary {
        seconds: started.elapsed().as_secs_f64(),
        produced: gen.produced,
        labelled_invalid: gen.malformed_by_reason.clone(),
        hostile: gen.hostile.clone(),
        enriched: outcome.enriched_ids.len() as u64,
        outcome,
        stores,
        rate,
        slice_seconds,
        latency_ms,
        job: JobState { id: job.to_string(), state: job_status.state, restarts: job_status.restarts, kept: a.keep_job },
        child_exited,
        live_quality,
        dashboard,
        dashboard_url,
        reconciled: false,
        why: Vec::new(),
    };
    summary.why = summary.reconcile();
    summary.reconciled = summary.why.is_empty();
    Ok(summary)
}

/// Starts `ecom serve` or `ecom sink` (`name`) for the demo's stack, its output appended to
/// `logs/<name>.log`.
pub(crate) fn spawn_service(
    exe: &std::path::Path,
    name: &str,
    a: &DemoArgs,
    logs: &std::path::Path,
) -> anyhow::Result<tokio::process::Child> {
    let cmd = if name == "serve" {
        serve_command(exe, &a.redis, &a.models_dir, &a.serve_addr.to_string(), &a.serve_http_addr.to_string())?
    } else {
        sink_command(exe, &a.es, &a.mongo, &a.cluster.brokers, &a.sink_http_addr.to_string())?
    };
    spawn_logged(cmd, name, &logs.join(format!("{name}.log")))
}

/// The job starts where its consumer group's committed offsets on ecom.events.raw stand: records
/// an earlier job left unread come first, and when their event times are later than this run's
/// (another --start-ms), their watermark makes this run's events LATE. Says so before it happens.
fn warn_unread_raw(brokers: &str, job_args: &[String]) {
    let group = job_args
        .iter()
        .position(|a| a == "--group-id")
        .and_then(|i| job_args.get(i + 1))
        .map_or("ecom-flink", String::as_str);
    let unread = || -> anyhow::Result<i64> {
        let ends = end_offsets(brokers, &[RAW])?;
        let consumer: BaseConsumer =
            ecom_sink::kafka::client(brokers)?.set("group.id", group).set("enable.auto.commit", "false").create()?;
        let mut tpl = TopicPartitionList::new();
        for (t, p) in ends.keys() {
            tpl.add_partition(t, *p);
        }
        let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| {
                let end = ends.get(&(e.topic().to_string(), e.partition()))?;
                // No committed offset: the job starts at the earliest record, all of them unread.
                Some(end - e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(0))
            })
            .sum())
    };
    match unread() {
        Ok(0) => {}
        Ok(n) => eprintln!(
            "warning: the job's consumer group {group} has {n} records of {RAW} unread from before this run: the job reads them first, and if their event times are later than this run's, this run's events come out REJECT_REASON_LATE"
        ),
        Err(e) => eprintln!("warning: could not read consumer group {group}'s offsets on {RAW}: {e:#}"),
    }
}
