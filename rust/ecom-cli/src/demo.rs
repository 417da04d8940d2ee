//! `ecom demo`: the whole slice on the local stack. Starts `ecom serve` and `ecom sink`,
//! submits the Flink job, generates events, waits until every raw record is accounted for in
//! Kafka and in both stores, prints a summary and whether it reconciles, then cleans up.
use crate::generate::now_ms;
use crate::generate::{self, GenerateArgs, GenerateSummary};
use crate::stack::{EsArgs, EsHttp, MongoArgs, RedisArgs};
use anyhow::{bail, Context};
use ecom_proto::v1::{EnrichedEvent, EventKind, InvalidEvent, RejectReason, Session, WindowMetrics};
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

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
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092", env = "KAFKA_BOOTSTRAP", global = true)]
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
}

/// The demo's records per second when --rate is not given.
const DEMO_RATE: f64 = 1_000.0;

pub(crate) const RAW: &str = "ecom.events.raw";
pub(crate) const ENRICHED: &str = "ecom.events.enriched";
pub(crate) const INVALID: &str = "ecom.events.invalid";
pub(crate) const SESSIONS: &str = "ecom.sessions";
pub(crate) const METRICS: &str = "ecom.metrics";

/// Children started by the demo; killed on drop so an error never leaves them behind.
pub(crate) struct Children(pub(crate) Vec<(String, tokio::process::Child)>);

impl Children {
    /// The first child that has exited, with its exit status.
    pub(crate) fn exited(&mut self) -> Option<(String, std::process::ExitStatus)> {
        self.0.iter_mut().find_map(|(name, c)| c.try_wait().ok().flatten().map(|status| (name.clone(), status)))
    }

    pub(crate) async fn stop(&mut self) {
        for (name, child) in &mut self.0 {
            if let Some(pid) = child.id() {
                // SIGTERM first: both services drain and exit cleanly.
                let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
            }
            match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
                Ok(_) => eprintln!("stopped ecom {name}"),
                Err(_) => {
                    let _ = child.kill().await;
                    eprintln!("killed ecom {name} (did not stop within 15 s)");
                }
            }
        }
        self.0.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.start_kill();
        }
    }
}

fn step(msg: &str) {
    eprintln!("==> {msg}");
}

pub(crate) async fn run(a: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let state = a.state_dir.clone().unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into())).join(".local/state/ecom")
    });
    let logs = state.join("demo");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;

    step("checking the local stack");
    check_stack(&a, &http).await?;
    let Some(model) = ecom_train::current(&a.models_dir) else {
        bail!(
            "no model in {} (models/CURRENT): train one first, e.g. `ecom generate --events 300000 --out DATA && ecom train --from DATA --models-dir {0}` (dev/demo does this for you)",
            a.models_dir.display()
        );
    };
    eprintln!("    ecom serve scores with model {model} from {}", a.models_dir.display());

    step("starting ecom serve and ecom sink");
    // Another serve or sink holding these ports would answer the health checks in place of the
    // ones this demo starts (which could not bind and would exit).
    for (name, addr, flag) in [
        ("serve", a.serve_addr, "--serve-addr"),
        ("serve", a.serve_http_addr, "--serve-http-addr"),
        ("sink", a.sink_http_addr, "--sink-http-addr"),
    ] {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Err(crate::exit::config(format!(
                "{addr} is already taken, e.g. by another ecom {name} or demo: stop it (ss -ltnp 'sport = :{}') or give the demo another {flag}",
                addr.port()
            )));
        }
    }
    let exe = std::env::current_exe().context("locating the ecom binary")?;
    let mut children = Children(Vec::new());
    for name in ["serve", "sink"] {
        children.0.push((name.to_string(), spawn_service(&exe, name, &a, &logs)?));
    }
    wait_http(&http, &a.serve_health(), "ecom serve", &logs.join("serve.log"), &mut children).await?;
    wait_http(&http, &a.sink_health(), "ecom sink", &logs.join("sink.log"), &mut children).await?;

    step("submitting the Flink job");
    let flink = a.cluster.flink();
    let serve_addr = a.serve_addr.to_string();
    let mut job_args: Vec<String> =
        ["--bootstrap-servers", &a.cluster.brokers, "--serve-address", &serve_addr].map(String::from).to_vec();
    job_args.extend(a.job_options.iter().cloned());
    warn_unread_raw(&a.cluster.brokers, &job_args);
    let job = flink.submit(&http, a.parallelism, &job_args).await?;

    // Remember where the output topics end now: this run's results come after.
    let out_start = end_offsets(&a.cluster.brokers, &[ENRICHED, INVALID, SESSIONS, METRICS])?;

    step(&format!("generating {} events into {RAW}", a.events));
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    });
    // Sessions last up to ~an hour of event time: start far enough back to end before now.
    let start_ms = a.start_ms.unwrap_or_else(|| {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        // ~6 s of event time per event covers the quietest hours at the default traffic.
        now - 2 * 3_600_000 - a.events as i64 * 6_000
    });
    let gen_args_rate = Some(a.rate.unwrap_or(DEMO_RATE)).filter(|r| *r > 0.0);
    let mut gen_args = GenerateArgs::with(a.events, seed, a.malformed_rate, Some(start_ms), &a.cluster.brokers);
    gen_args.duplicate_rate = a.duplicate_rate;
    gen_args.late_rate = a.late_rate;
    gen_args.hostile_rate = a.hostile_rate;
    gen_args.peak_sessions_per_hour = a.peak_sessions_per_hour;
    gen_args.rate = gen_args_rate;
    let stop_gen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    gen_args.stop = Some(stop_gen.clone());
    let gen_started_ms = now_ms();
    // Generating (paced, it takes a while) and the waits below race the job's watcher: a job
    // that stops ends the demo at once.
    let mut watch = flink.watch(&http, &job, &logs);
    let gen = tokio::select! {
        g = generate::run(gen_args) => g?,
        ended = watch.ended() => {
            stop_gen.store(true, std::sync::atomic::Ordering::Relaxed);
            children.stop().await;
            return Err(ended.into());
        }
    };
    let gen_done = Instant::now();

    step("waiting for every raw record to come out enriched or invalid");
    // collect_outputs blocks in Kafka polls, so it runs on a thread of its own (left behind
    // when the job stops first: the demo exits).
    let (a, gen) = (std::sync::Arc::new(a), std::sync::Arc::new(gen));
    let flink = a.cluster.flink();
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
        o = collected => o,
        ended = watch.ended() => {
            children.stop().await;
            return Err(ended.into());
        }
    };
    let slice_secs = gen_done.elapsed().as_secs_f64() + gen.seconds;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            children.stop().await;
            drop(watch);
            flink.cancel(&http, &job).await;
            return Err(e);
        }
    };

    step("waiting for Elasticsearch and MongoDB to hold every enriched event and dead letter");
    let stores = tokio::select! {
        s = count_stores(&a, &outcome, true) => s,
        ended = watch.ended() => {
            children.stop().await;
            return Err(ended.into());
        }
    };
    // Read before the demo cancels the job itself.
    let job_status = watch.finish().await;
    let child_exited = children.exited();
    children.stop().await;
    if a.keep_job {
        eprintln!("leaving Flink job {job} running (--keep-job)");
    } else {
        flink.cancel(&http, &job).await;
    }
    let StoreCounts { es_docs, mongo_docs, es_total, mongo_total, es_invalid, mongo_invalid } = stores?;
    let indexed = indexed_latency(&a.es.http()?, gen_started_ms).await;

    let enriched = outcome.enriched_ids.len() as u64;
    let invalid = outcome.invalid as u64;
    let expected_invalid: u64 = gen.malformed_by_reason.values().sum();
    println!();
    println!("ecom demo summary ({:.0}s in all)", started.elapsed().as_secs_f64());
    println!("  produced to {RAW:<22} {:>8}", gen.produced);
    println!("  enriched in {ENRICHED:<22} {:>8}", enriched);
    println!("  invalid  in {INVALID:<22} {:>8}   (generator labelled {expected_invalid} malformed)", invalid);
    for (reason, n) in &outcome.invalid_by_reason {
        let want = gen.malformed_by_reason.get(reason).copied().unwrap_or(0);
        println!("      {reason:<40} {n:>6}   labelled {want}");
    }
    println!("  guard verdicts                        {}", generate::fmt_counts(&outcome.verdicts));
    println!("  guard fallbacks                       {:>8}", outcome.guard_fallbacks);
    println!(
        "  scored (purchase probability)         {:>8}   (score fallbacks {})",
        outcome.scored, outcome.score_fallbacks
    );
    println!(
        "  with recommendations                  {:>8}   of {} product views and carts (recommend fallbacks {})",
        outcome.recommended, outcome.recommend_asked, outcome.recommend_fallbacks
    );
    println!(
        "  with the user's earlier sessions      {:>8}   (events of a returning user: user features from the job's user step)",
        outcome.with_user_history
    );
    println!(
        "  sessions closed in {SESSIONS:<18} {:>8}   ({} events, {} purchased; open sessions close after 30 min of event time)",
        outcome.sessions, outcome.session_events, outcome.sessions_purchased
    );
    println!(
        "  metrics records in {METRICS:<18} {:>8}   (ε spent per record: {})",
        outcome.metrics,
        fmt_epsilons(&outcome.metrics_epsilon)
    );
    println!("  duplicates in Kafka outputs           {:>8}", outcome.duplicates);
    if !gen.hostile.is_empty() {
        println!("  hostile records produced              {}", generate::fmt_counts(&gen.hostile));
    }
    println!(
        "  largest record written                {:>8} bytes enriched, {} bytes dead letter ({} kept a prefix only)",
        outcome.largest_enriched_bytes, outcome.largest_invalid_bytes, outcome.invalid_truncated
    );
    println!("  documents in Elasticsearch (this run) {:>8}   (ecom-events-* holds {es_total} in all)", es_docs);
    println!("  documents in MongoDB (this run)       {:>8}   (ecom.events holds {mongo_total} in all)", mongo_docs);
    println!(
        "  dead letters in Elasticsearch / MongoDB {:>6} / {}   (ecom-invalid-*, ecom.invalid; this run)",
        es_invalid, mongo_invalid
    );
    let paced = match gen_args_rate {
        Some(r) => format!("paced at {r:.0} records/s (--rate)"),
        None => "unpaced (--rate 0): a burst, so the latencies below measure its queue".to_string(),
    };
    println!(
        "  throughput raw -> enriched|invalid    {:>8.0} events/s ({} records in {:.1}s, {paced})",
        gen.produced as f64 / slice_secs.max(1e-9),
        gen.produced,
        slice_secs
    );
    let mut stages: Vec<String> =
        outcome.latency_ms.iter().map(|(s, (p50, p99))| format!("{s} {p50} / {p99}")).collect();
    if let Some((p50, p99)) = indexed {
        stages.push(format!("indexed by the sink {p50} / {p99}"));
    }
    if !stages.is_empty() {
        println!("  latency from produced, p50 / p99 ms   {}", stages.join(", "));
        println!(
            "      (a new job: its first seconds include JIT warm-up; searchable and at steady state: ecom bench e2e)"
        );
    }
    let after = if a.keep_job { "left running" } else { "then cancelled by the demo" };
    println!("  Flink job state                       {:>8}   (job {job}, {after})", job_status.state);
    println!(
        "  Flink job restarts                    {:>8}{}",
        job_status.restarts,
        if job_status.restarts > 0 { "   (each failure was printed as a warning while waiting)" } else { "" }
    );

    let mut why = Vec::new();
    if gen.produced != enriched + invalid {
        why.push(format!("produced {} != enriched {enriched} + invalid {invalid}", gen.produced));
    }
    if es_docs != enriched {
        why.push(format!("Elasticsearch holds {es_docs} of {enriched} enriched"));
    }
    if mongo_docs != enriched {
        why.push(format!("MongoDB holds {mongo_docs} of {enriched} enriched"));
    }
    if es_invalid != invalid || mongo_invalid != invalid {
        why.push(format!(
            "the stores hold {es_invalid} (Elasticsearch) and {mongo_invalid} (MongoDB) of {invalid} dead letters"
        ));
    }
    if es_total != mongo_total {
        why.push(format!("store totals differ: Elasticsearch {es_total}, MongoDB {mongo_total}"));
    }
    if outcome.duplicates > 0 {
        why.push(format!("{} raw records came out more than once", outcome.duplicates));
    }
    if outcome.metrics_without_epsilon > 0 {
        why.push(format!("{} metrics records do not say the ε they spent", outcome.metrics_without_epsilon));
    }
    if outcome.sessions_unknown_user > 0 {
        why.push(format!("{} sessions without a session_id or user_id", outcome.sessions_unknown_user));
    }
    // A record stuffed to the limit comes out without what it was stuffed with; a dead letter
    // keeps at most the limit's worth of its record.
    let limit = ecom_core::validate::MAX_RECORD_BYTES;
    if outcome.largest_enriched_bytes > limit {
        why.push(format!(
            "an enriched record of {} bytes is over the record limit {limit}",
            outcome.largest_enriched_bytes
        ));
    }
    if outcome.largest_invalid_bytes > limit + 4_096 {
        why.push(format!("a dead letter of {} bytes is over the record limit {limit}", outcome.largest_invalid_bytes));
    }
    if let Some((name, status)) = &child_exited {
        why.push(format!("ecom {name} exited during the run ({status})"));
    }
    if outcome.mislabelled > 0 {
        why.push(format!(
            "{} raw records did not get their own label ({})",
            outcome.mislabelled,
            outcome.mislabelled_examples.join("; ")
        ));
    }
    if outcome.invalid_by_reason != gen.malformed_by_reason {
        why.push("invalid reasons differ from the generator's labels".into());
    }
    let dashboard = a.dashboard_url.trim_end_matches('/');
    match http.get(format!("{dashboard}/health")).send().await {
        Ok(r) if r.status().is_success() => {
            println!("  dashboard                             {dashboard}/ (live, keeps running)")
        }
        _ => {
            println!("  dashboard                             not running at {dashboard} (start it with dev/dashboard)")
        }
    }
    if why.is_empty() {
        println!("reconciled: yes");
        Ok(())
    } else {
        println!("reconciled: no ({})", why.join("; "));
        std::process::exit(crate::exit::UNRECONCILED.into());
    }
}

/// Starts `ecom serve` or `ecom sink` (`name`) for the demo's stack, its output appended to
/// `logs/<name>.log`.
pub(crate) fn spawn_service(
    exe: &std::path::Path,
    name: &str,
    a: &DemoArgs,
    logs: &std::path::Path,
) -> anyhow::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(exe);
    if name == "serve" {
        cmd.arg("serve").arg("--models-dir").arg(&a.models_dir);
        cmd.arg("--grpc-addr").arg(a.serve_addr.to_string()).arg("--http-addr").arg(a.serve_http_addr.to_string());
        a.redis.hand_to(&mut cmd)?;
        // Guard hashes any raw IP with the job's key ($ECOM_IP_HASH_KEY is inherited when set).
        if std::env::var_os(crate::stack::IP_HASH_KEY_ENV).is_none() {
            cmd.arg("--ip-hash-key-file").arg(crate::stack::ip_hash_key_file()?);
        }
    } else {
        cmd.arg("sink").arg("--brokers").arg(&a.cluster.brokers);
        cmd.arg("--metrics-addr").arg(a.sink_http_addr.to_string());
        a.es.hand_to(&mut cmd)?;
        a.mongo.hand_to(&mut cmd)?;
    }
    let log = std::fs::OpenOptions::new().create(true).append(true).open(logs.join(format!("{name}.log")))?;
    cmd.stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting ecom {name}"))
}

pub(crate) async fn check_stack(a: &DemoArgs, http: &reqwest::Client) -> anyhow::Result<()> {
    let hint = "start the local stack with dev/up (dev/status shows what is down)";
    let es = a.es.http()?;
    es.client
        .get(format!("{}/_cluster/health", es.base))
        .send()
        .await
        .with_context(|| format!("Elasticsearch at {} does not answer: {hint}", es.base))?;
    let ov: Value = http
        .get(format!("{}/overview", a.cluster.flink_rest))
        .send()
        .await
        .with_context(|| format!("Flink at {} does not answer: {hint}", a.cluster.flink_rest))?
        .json()
        .await?;
    if ov["taskmanagers"].as_u64().unwrap_or(0) == 0 {
        bail!("Flink at {} has no TaskManager: {hint}", a.cluster.flink_rest);
    }
    let consumer: BaseConsumer = ecom_sink::kafka::client(&a.cluster.brokers)?.create()?;
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .with_context(|| format!("Kafka at {} does not answer: {hint}", a.cluster.brokers))?;
    for t in [RAW, ENRICHED, INVALID, SESSIONS, METRICS] {
        if !md.topics().iter().any(|x| x.name() == t && x.error().is_none()) {
            bail!("Kafka topic {t} is missing: {hint}");
        }
    }
    let redis_url = a.redis.url()?;
    let client = a.redis.client()?;
    let mut c = tokio::time::timeout(Duration::from_secs(5), client.get_multiplexed_async_connection())
        .await
        .map_err(|_| anyhow::anyhow!("Redis at {redis_url} timed out: {hint}"))?
        .with_context(|| format!("Redis at {redis_url} does not answer: {hint}"))?;
    let _: String = redis::cmd("PING").query_async(&mut c).await?;
    let mongo_url = a.mongo.url()?;
    let mongo = mongodb::Client::with_uri_str(mongo_url.expose()).await?;
    tokio::time::timeout(Duration::from_secs(10), mongo.database("ecom").run_command(mongodb::bson::doc! {"ping": 1}))
        .await
        .map_err(|_| anyhow::anyhow!("MongoDB at {mongo_url} timed out: {hint}"))?
        .with_context(|| format!("MongoDB at {mongo_url} does not answer: {hint}"))?;
    Ok(())
}

pub(crate) async fn wait_http(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    log: &std::path::Path,
    children: &mut Children,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let tail = || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let last: Vec<&str> = text.lines().rev().take(20).collect();
        format!("last log lines ({}):\n{}", log.display(), last.into_iter().rev().collect::<Vec<_>>().join("\n"))
    };
    loop {
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        // A child that exited (a port taken, a bad flag) is reported at once, not after 60 s.
        if let Some((name, status)) = children.exited() {
            bail!("ecom {name} exited ({status}) while waiting for {what} at {url}; {}", tail());
        }
        if Instant::now() > deadline {
            bail!("{what} did not become healthy at {url} within 60 s; {}", tail());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Flink session cluster to submit the job jar to through its REST API (no local Flink
/// install needed), and the jar.
pub(crate) struct Flink<'a> {
    pub(crate) rest: &'a str,
    pub(crate) jar: Option<&'a std::path::Path>,
}

impl Flink<'_> {
    /// Submits the job with `job_args` at `parallelism`, after cancelling any `ecom` job left
    /// running, and waits until every task runs. Returns the job id.
    pub(crate) async fn submit(
        &self,
        http: &reqwest::Client,
        parallelism: u32,
        job_args: &[String],
    ) -> anyhow::Result<String> {
        // A job left over from an interrupted demo would compete for the same records.
        for id in self.running_ecom_jobs(http).await? {
            eprintln!("cancelling the ecom job {id} left running by an earlier run");
            self.cancel(http, &id).await;
        }
        self.start(http, parallelism, job_args, None).await
    }

    /// The ids of the cluster's `ecom` jobs that are running or about to.
    pub(crate) async fn running_ecom_jobs(&self, http: &reqwest::Client) -> anyhow::Result<Vec<String>> {
        let jobs: Value = http
            .get(format!("{}/jobs/overview", self.rest))
            .send()
            .await
            .with_context(|| format!("Flink's REST API at {} does not answer", self.rest))?
            .json()
            .await?;
        Ok(jobs["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|j| {
                j["name"] == "ecom"
                    && matches!(j["state"].as_str(), Some("RUNNING" | "CREATED" | "RESTARTING" | "INITIALIZING"))
            })
            .filter_map(|j| j["jid"].as_str().map(String::from))
            .collect())
    }

    /// Uploads the jar (unless the cluster has it), runs the job with `job_args` at
    /// `parallelism`, from `savepoint` when given, and waits until every task runs. Returns
    /// the job id.
    pub(crate) async fn start(
        &self,
        http: &reqwest::Client,
        parallelism: u32,
        job_args: &[String],
        savepoint: Option<&str>,
    ) -> anyhow::Result<String> {
        let jar = self
            .jar
            .context("the job jar is not set: run via dev/demo or pass --jar flink-job/target/ecom-flink-job.jar")?;
        if !jar.exists() {
            bail!("job jar {} does not exist: build it with dev/build", jar.display());
        }
        // The job's IP-hash key travels in a file (or $ECOM_IP_HASH_KEY), never in its arguments.
        let mut key = Vec::new();
        let keyed = |o: &str| job_args.iter().any(|a| a.starts_with(o));
        if std::env::var_os(crate::stack::IP_HASH_KEY_ENV).is_none()
            && !keyed("--ip-hash-key-file")
            && !keyed("--allow-dev-ip-hash-key")
        {
            key = vec!["--ip-hash-key-file".to_string(), crate::stack::ip_hash_key_file()?.display().to_string()];
        }
        let jar_id = self.upload_jar(http, jar).await?;
        let args: Vec<&String> = job_args.iter().chain(&key).collect();
        let resp = http
            .post(format!("{}/jars/{jar_id}/run", self.rest))
            .json(&match savepoint {
                None => serde_json::json!({"programArgsList": args, "parallelism": parallelism}),
                Some(path) => serde_json::json!({"programArgsList": args, "parallelism": parallelism,
                                                 "savepointPath": path}),
            })
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .with_context(|| format!("submitting the job to Flink at {}", self.rest))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or_default();
        let Some(id) = v["jobid"].as_str().filter(|_| status.is_success()).map(String::from) else {
            bail!("Flink at {} refused the job ({status}): {}", self.rest, rest_error(&v));
        };
        // Wait until every task runs: records produced before that are still read (committed
        // offsets / earliest), but latency numbers would include the job's start.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let j: Value = http.get(format!("{}/jobs/{id}", self.rest)).send().await?.json().await?;
            let running =
                j["vertices"].as_array().is_some_and(|v| !v.is_empty() && v.iter().all(|v| v["status"] == "RUNNING"));
            if running {
                eprintln!("Flink job {id} is running");
                return Ok(id);
            }
            if matches!(j["state"].as_str(), Some("FAILED" | "CANCELED" | "FINISHED")) || Instant::now() > deadline {
                let root = crate::flink::root_exception(http, self.rest, &id).await;
                bail!(
                    "Flink job {id} did not start (state {}): {}",
                    j["state"],
                    root.as_deref().unwrap_or("no exception reported")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The id of `jar` in the cluster's jar store (`/jars`), uploaded unless a jar of the same
    /// content is there already: Flink keeps each upload under the file name given, and ours is
    /// `ecom-flink-job-<sha256 prefix>.jar`. Other ecom jars there are deleted, so rebuilds do not
    /// pile up in the JobManager's upload directory.
    async fn upload_jar(&self, http: &reqwest::Client, jar: &std::path::Path) -> anyhow::Result<String> {
        use sha2::Digest;
        let bytes = tokio::fs::read(jar).await.with_context(|| format!("reading {}", jar.display()))?;
        let digest = hex::encode(&sha2::Sha256::digest(&bytes)[..8]);
        let name = format!("ecom-flink-job-{digest}.jar");
        let listed: Value = http
            .get(format!("{}/jars", self.rest))
            .send()
            .await
            .with_context(|| format!("Flink's REST API at {} does not answer (run dev/up?)", self.rest))?
            .json()
            .await
            .context("reading Flink's list of jars")?;
        let mut found = None;
        for f in listed["files"].as_array().into_iter().flatten() {
            let (Some(id), Some(n)) = (f["id"].as_str(), f["name"].as_str()) else { continue };
            if n == name && found.is_none() {
                found = Some(id.to_string());
            } else if n.starts_with("ecom-flink-job-") {
                let _ = http.delete(format!("{}/jars/{id}", self.rest)).send().await;
            }
        }
        if let Some(id) = found {
            return Ok(id);
        }
        // One multipart/form-data part, "jarfile", as Flink's upload handler takes it.
        let mut boundary = format!("ecom-{digest}");
        while bytes.windows(boundary.len()).any(|w| w == boundary.as_bytes()) {
            boundary.push('x');
        }
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"jarfile\"; filename=\"{name}\"\r\n\
             Content-Type: application/x-java-archive\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let resp = http
            .post(format!("{}/jars/upload", self.rest))
            .header(reqwest::header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
            .body(body)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .with_context(|| format!("uploading {} to Flink at {}", jar.display(), self.rest))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or_default();
        match v["filename"].as_str().and_then(|f| f.rsplit('/').next()).filter(|_| status.is_success()) {
            Some(id) => Ok(id.to_string()),
            None => bail!("Flink at {} refused the jar upload ({status}): {}", self.rest, rest_error(&v)),
        }
    }

    /// Watches job `id` while a command waits on its outputs; the report of its end goes to
    /// `report_dir`.
    pub(crate) fn watch(
        &self,
        http: &reqwest::Client,
        id: &str,
        report_dir: &std::path::Path,
    ) -> crate::flink::JobWatch {
        crate::flink::JobWatch::start(http, self.rest, id, report_dir)
    }

    /// Cancels job `id` and waits (at most 30 s) until it stopped.
    pub(crate) async fn cancel(&self, http: &reqwest::Client, id: &str) {
        let r = http.patch(format!("{}/jobs/{id}?mode=cancel", self.rest)).send().await;
        if let Err(e) = r {
            eprintln!("warning: could not cancel Flink job {id}: {e}");
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = http.get(format!("{}/jobs/{id}", self.rest)).send().await {
                if let Ok(j) = r.json::<Value>().await {
                    if matches!(j["state"].as_str(), Some("CANCELED" | "FAILED" | "FINISHED")) {
                        eprintln!("Flink job {id} cancelled");
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        eprintln!("warning: Flink job {id} did not stop within 30 s");
    }

    /// Stops job `id` with a savepoint (into `dir`, or the cluster's
    /// `execution.checkpointing.savepoint-dir`): the sources stop, a last checkpoint commits the
    /// Kafka transactions, and the job ends FINISHED. Waits up to `wait`; returns the savepoint's
    /// path, from which `start` resumes with nothing lost or duplicated.
    pub(crate) async fn stop_with_savepoint(
        &self,
        http: &reqwest::Client,
        id: &str,
        dir: Option<&str>,
        wait: Duration,
    ) -> anyhow::Result<String> {
        let body = match dir {
            Some(d) => serde_json::json!({"targetDirectory": d, "drain": false}),
            None => serde_json::json!({"drain": false}),
        };
        let resp = http
            .post(format!("{}/jobs/{id}/stop", self.rest))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("asking Flink at {} to stop job {id}", self.rest))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or_default();
        let Some(trigger) = v["request-id"].as_str().filter(|_| status.is_success()) else {
            bail!("Flink at {} refused to stop job {id} ({status}): {}", self.rest, rest_error(&v));
        };
        let deadline = Instant::now() + wait;
        loop {
            let v: Value =
                http.get(format!("{}/jobs/{id}/savepoints/{trigger}", self.rest)).send().await?.json().await?;
            if v["status"]["id"] == "COMPLETED" {
                if let Some(path) = v["operation"]["location"].as_str() {
                    return Ok(path.to_string());
                }
                bail!(
                    "the savepoint of job {id} failed: {}",
                    v["operation"]["failure-cause"]["stack-trace"]
                        .as_str()
                        .and_then(|t| t.lines().filter_map(|l| l.trim().strip_prefix("Caused by: ")).next_back())
                        .unwrap_or("no cause given")
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "job {id}'s savepoint did not complete within {} s (it may still: see the Flink UI)",
                    wait.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// What Flink's REST API says went wrong: the deepest "Caused by" of its error (the job's own
/// message, e.g. a bad option), else the error as given.
fn rest_error(v: &Value) -> String {
    let all: Vec<&str> = v["errors"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let text = all.join("\n");
    let cause = text.lines().filter_map(|l| l.trim().strip_prefix("Caused by: ")).next_back();
    match cause {
        Some(c) => c.to_string(),
        None if text.is_empty() => v.to_string(),
        None => text.lines().next().unwrap_or_default().to_string(),
    }
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

/// p50 and p99 of produced → indexed by the sink (the documents' `latency_ms`: the sink's
/// clock as it builds the write) over the events produced since `from_ms`; Elasticsearch's
/// percentiles are estimates (t-digest).
async fn indexed_latency(es: &EsHttp, from_ms: i64) -> Option<(i64, i64)> {
    let body = json!({"size": 0, "query": {"range": {"produced_at": {"gte": from_ms}}},
                      "aggs": {"p": {"percentiles": {"field": "latency_ms.produced_to_indexed", "percents": [50, 99]}}}});
    let r: Value = es
        .client
        .post(format!("{}/ecom-events-*/_search", es.base))
        .json(&body)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let v = &r["aggregations"]["p"]["values"];
    Some((v["50.0"].as_f64()?.round() as i64, v["99.0"].as_f64()?.round() as i64))
}

/// p50 and p99 of sorted values.
fn percentiles(v: &[i64]) -> Option<(i64, i64)> {
    (!v.is_empty()).then(|| (v[v.len() / 2], v[(v.len() * 99 / 100).min(v.len() - 1)]))
}

pub(crate) fn end_offsets(brokers: &str, topics: &[&str]) -> anyhow::Result<HashMap<(String, i32), i64>> {
    let consumer: BaseConsumer =
        ecom_sink::kafka::client(brokers)?.set("isolation.level", "read_committed").create()?;
    let md = consumer.fetch_metadata(None, Duration::from_secs(10))?;
    let mut out = HashMap::new();
    for t in md.topics().iter().filter(|t| topics.contains(&t.name())) {
        for p in t.partitions() {
            let (_, high) = consumer.fetch_watermarks(t.name(), p.id(), Duration::from_secs(10))?;
            out.insert((t.name().to_string(), p.id()), high);
        }
    }
    Ok(out)
}

#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) enriched_ids: Vec<String>,
    pub(crate) invalid: usize,
    /// The sink's document id of each of this run's dead letters (its raw record's position).
    pub(crate) invalid_ids: Vec<String>,
    pub(crate) invalid_by_reason: BTreeMap<String, u64>,
    pub(crate) verdicts: BTreeMap<String, u64>,
    pub(crate) guard_fallbacks: u64,
    pub(crate) scored: u64,
    pub(crate) score_fallbacks: u64,
    pub(crate) recommend_asked: u64,
    pub(crate) recommended: u64,
    pub(crate) recommend_fallbacks: u64,
    pub(crate) with_user_history: u64,
    pub(crate) sessions: u64,
    pub(crate) session_events: u64,
    pub(crate) sessions_purchased: u64,
    pub(crate) sessions_unknown_user: u64,
    pub(crate) metrics: u64,
    pub(crate) metrics_without_epsilon: u64,
    /// ε spent per metrics record (as text, e.g. "2") → records.
    pub(crate) metrics_epsilon: BTreeMap<String, u64>,
    pub(crate) duplicates: u64,
    /// Largest record read from ecom.events.enriched / ecom.events.invalid, in bytes.
    pub(crate) largest_enriched_bytes: usize,
    pub(crate) largest_invalid_bytes: usize,
    /// Dead letters that keep only a prefix of their record.
    pub(crate) invalid_truncated: u64,
    /// Raw records whose outcome is not their own label (valid but rejected, labelled but
    /// enriched, or rejected for another reason), and the first few of them described.
    pub(crate) mislabelled: u64,
    pub(crate) mislabelled_examples: Vec<String>,
    /// (stage, (p50, p99)) of produced → ingested, enriched, in ms.
    pub(crate) latency_ms: Vec<(&'static str, (i64, i64))>,
    /// The latest `enriched_at_ms` of an event that got a Guard, Score or Recommend fallback.
    pub(crate) last_fallback_at_ms: i64,
}

/// Reads the job's outputs (read_committed) from where they ended before this run, and
/// matches each record to a raw position this run produced, until all are accounted for.
pub(crate) async fn collect_outputs(
    a: &DemoArgs,
    gen: &GenerateSummary,
    start: &HashMap<(String, i32), i64>,
) -> anyhow::Result<Outcome> {
    let consumer: BaseConsumer = ecom_sink::kafka::client(&a.cluster.brokers)?
        .set("group.id", "ecom-demo-reconcile")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for ((t, p), o) in start {
        tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
    }
    consumer.assign(&tpl)?;
    let bar = ProgressBar::new(gen.produced);
    bar.set_style(
        ProgressStyle::with_template("accounted {bar:30} {pos}/{len} raw records {per_sec}").expect("static template"),
    );
    let mut seen: HashSet<(i32, i64)> = HashSet::new();
    let mut out = Outcome::default();
    // produced → ingested, enriched (this reader starts after the generator, so the time it
    // reads a record is no stage).
    let mut latencies: [Vec<i64>; 2] = Default::default();
    let deadline = Instant::now() + Duration::from_secs(a.timeout_secs);
    let mut last_progress = Instant::now();
    while (seen.len() as u64) < gen.produced {
        if Instant::now() > deadline {
            bar.abandon();
            bail!(
                "timed out after {} s with {} of {} raw records accounted for; see the Flink job's exceptions at {} and the logs under {}",
                a.timeout_secs,
                seen.len(),
                gen.produced,
                a.cluster.flink_rest,
                a.state_dir.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
            );
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            if last_progress.elapsed() > Duration::from_secs(30) {
                bar.println(format!("still waiting: {} of {} accounted for", seen.len(), gen.produced));
                last_progress = Instant::now();
            }
            continue;
        };
        let msg = msg.context("reading the job's output topics")?;
        let payload = msg.payload().unwrap_or_default();
        if count_derived(&mut out, msg.topic(), payload)? {
            continue;
        }
        let largest =
            if msg.topic() == ENRICHED { &mut out.largest_enriched_bytes } else { &mut out.largest_invalid_bytes };
        *largest = (*largest).max(payload.len());
        // Decode once, then count each raw position of this run exactly once.
        let (source, record) = if msg.topic() == ENRICHED {
            let e = EnrichedEvent::decode(payload).context("an ecom.events.enriched record is not an EnrichedEvent")?;
            (e.source.clone().unwrap_or_default(), Ok(e))
        } else {
            let e = InvalidEvent::decode(payload).context("an ecom.events.invalid record is not an InvalidEvent")?;
            (e.source.clone().unwrap_or_default(), Err(e))
        };
        if !src_in_run(&source, gen) {
            continue;
        }
        if !seen.insert((source.partition, source.offset)) {
            out.duplicates += 1;
            continue;
        }
        bar.inc(1);
        last_progress = Instant::now();
        let label = gen.positions.get(&(source.partition, source.offset)).copied().unwrap_or(0);
        let got = match &record {
            Ok(_) => 0,
            Err(e) => e.reason,
        };
        if got != label {
            out.mislabelled += 1;
            if out.mislabelled_examples.len() < 5 {
                let name = |r: i32| RejectReason::try_from(r).map_or("?".to_string(), |r| r.as_str_name().to_string());
                let detail = record.as_ref().err().map_or(String::new(), |e| format!(": {}", e.detail));
                out.mislabelled_examples.push(format!(
                    "{RAW}/{}@{} labelled {} came out {}{detail}",
                    source.partition,
                    source.offset,
                    if label == 0 { "valid".into() } else { name(label) },
                    if got == 0 { "enriched".into() } else { name(got) },
                ));
            }
        }
        match record {
            Ok(e) => {
                out.enriched_ids.push(e.event.as_ref().map(|x| x.event_id.clone()).unwrap_or_default());
                let v = ecom_proto::v1::Verdict::try_from(e.verdict).map(|v| v.as_str_name()).unwrap_or("?");
                *out.verdicts.entry(v.trim_start_matches("VERDICT_").to_ascii_lowercase()).or_default() += 1;
                out.guard_fallbacks += u64::from(e.guard_fallback);
                out.scored += u64::from(e.purchase_probability.is_some());
                out.score_fallbacks += u64::from(e.score_fallback);
                out.with_user_history += u64::from(e.user.is_some_and(|u| u.prior_sessions > 0));
                let kind = e.event.as_ref().map_or(0, |x| x.kind);
                if kind == EventKind::ProductView as i32 || kind == EventKind::AddToCart as i32 {
                    out.recommend_asked += 1;
                    out.recommended += u64::from(!e.recommendations.is_empty());
                    out.recommend_fallbacks += u64::from(e.recommend_fallback);
                }
                if e.guard_fallback || e.score_fallback || e.recommend_fallback {
                    out.last_fallback_at_ms = out.last_fallback_at_ms.max(e.enriched_at_ms);
                }
                if e.produced_at_ms > 0 {
                    let p = e.produced_at_ms;
                    for (v, t) in latencies.iter_mut().zip([e.ingested_at_ms, e.enriched_at_ms]) {
                        v.push(t - p);
                    }
                }
            }
            Err(e) => {
                out.invalid += 1;
                out.invalid_ids.push(ecom_sink::record::invalid_id(&e).unwrap_or_default());
                out.invalid_truncated += u64::from(e.raw_truncated);
                *out.invalid_by_reason.entry(e.reason_code).or_default() += 1;
            }
        }
    }
    bar.finish_and_clear();
    // Sessions and metrics the watermark released with the last records are committed in the
    // same checkpoint: read on until the topics are quiet for a few seconds.
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(5) {
        if let Some(msg) = consumer.poll(Duration::from_millis(200)) {
            let msg = msg.context("reading the job's output topics")?;
            if count_derived(&mut out, msg.topic(), msg.payload().unwrap_or_default())? {
                quiet_since = Instant::now();
            }
        }
    }
    for (stage, mut v) in ["ingested", "enriched"].into_iter().zip(latencies) {
        v.sort_unstable();
        if let Some(p) = percentiles(&v) {
            out.latency_ms.push((stage, p));
        }
    }
    Ok(out)
}

/// Counts a record of ecom.sessions or ecom.metrics; false for the other topics.
fn count_derived(out: &mut Outcome, topic: &str, payload: &[u8]) -> anyhow::Result<bool> {
    match topic {
        SESSIONS => {
            let s = Session::decode(payload).context("an ecom.sessions record is not a Session")?;
            out.sessions += 1;
            out.session_events += u64::from(s.events);
            out.sessions_purchased += u64::from(s.purchased);
            out.sessions_unknown_user += u64::from(s.session_id.is_empty() || s.user_id.is_empty());
        }
        METRICS => {
            let m = WindowMetrics::decode(payload).context("an ecom.metrics record is not a WindowMetrics")?;
            out.metrics += 1;
            if m.epsilon_spent > 0.0 && m.epsilon_spent.is_finite() {
                *out.metrics_epsilon.entry(format!("{}", m.epsilon_spent)).or_default() += 1;
            } else {
                out.metrics_without_epsilon += 1;
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn fmt_epsilons(e: &BTreeMap<String, u64>) -> String {
    if e.is_empty() {
        return "none yet".into();
    }
    e.iter().map(|(eps, n)| format!("{eps} on {n}")).collect::<Vec<_>>().join(", ")
}

fn src_in_run(src: &ecom_proto::v1::SourceOffset, gen: &GenerateSummary) -> bool {
    src.topic == RAW && gen.positions.contains_key(&(src.partition, src.offset))
}

/// What the stores hold of this run: its enriched events and dead letters (by id), and the
/// enriched events' totals.
pub(crate) struct StoreCounts {
    pub(crate) es_docs: u64,
    pub(crate) mongo_docs: u64,
    pub(crate) es_total: u64,
    pub(crate) mongo_total: u64,
    pub(crate) es_invalid: u64,
    pub(crate) mongo_invalid: u64,
}

/// How many of `ids` a MongoDB collection holds, one `{_id: id}` lookup each, 16 at a time:
/// FerretDB answers those from its _id index (~1 ms) but reads the whole collection for one
/// `{_id: {$in: ids}}` (~20 s at a few 100k documents, whatever the list's length).
pub(crate) async fn count_mongo_ids(
    coll: &mongodb::Collection<mongodb::bson::Document>,
    ids: &[String],
) -> anyhow::Result<u64> {
    use futures::StreamExt;
    let found = futures::stream::iter(ids)
        .map(|id| async move {
            coll.find_one(mongodb::bson::doc! {"_id": id}).projection(mongodb::bson::doc! {"_id": 1}).await
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut n = 0;
    for r in found {
        n += u64::from(r.context("looking up documents in MongoDB")?.is_some());
    }
    Ok(n)
}

/// Counts `ids` in an Elasticsearch index pattern and a MongoDB collection.
async fn count_ids(
    es: &EsHttp,
    index: &str,
    coll: &mongodb::Collection<mongodb::bson::Document>,
    ids: &[String],
) -> anyhow::Result<(u64, u64)> {
    let _ = es.client.post(format!("{}/{index}/_refresh", es.base)).send().await;
    let (mut in_es, mut mg) = (0, 0);
    for chunk in ids.chunks(5_000) {
        let r: Value = es
            .client
            .post(format!("{}/{index}/_count?ignore_unavailable=true&allow_no_indices=true", es.base))
            .json(&json!({"query": {"ids": {"values": chunk}}}))
            .send()
            .await
            .context("counting documents in Elasticsearch")?
            .json()
            .await?;
        in_es += r["count"].as_u64().unwrap_or(0);
        mg += count_mongo_ids(coll, chunk).await?;
    }
    Ok((in_es, mg))
}

/// Counts this run's enriched events and dead letters in both stores (by id) and both stores'
/// totals of enriched events, waiting until the run's documents are all there or the timeout
/// passes.
pub(crate) async fn count_stores(a: &DemoArgs, outcome: &Outcome, totals: bool) -> anyhow::Result<StoreCounts> {
    let es = a.es.http()?;
    let mongo = mongodb::Client::with_uri_str(a.mongo.url()?.expose()).await?;
    let db = mongo.database("ecom");
    let (events, invalid) = (db.collection("events"), db.collection("invalid"));
    // Replays are slow on the local FerretDB (see ecom-sink's write_mongo): allow for them.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (es_docs, mongo_docs) = count_ids(&es, "ecom-events-*", &events, &outcome.enriched_ids).await?;
        let (es_invalid, mongo_invalid) = count_ids(&es, "ecom-invalid-*", &invalid, &outcome.invalid_ids).await?;
        let (n, m) = (outcome.enriched_ids.len() as u64, outcome.invalid_ids.len() as u64);
        let all_in = es_docs == n && mongo_docs == n && es_invalid == m && mongo_invalid == m;
        if (all_in || Instant::now() > deadline) && !totals {
            return Ok(StoreCounts { es_docs, mongo_docs, es_total: 0, mongo_total: 0, es_invalid, mongo_invalid });
        }
        if all_in || Instant::now() > deadline {
            let r: Value = es.client.get(format!("{}/ecom-events-*/_count", es.base)).send().await?.json().await?;
            let es_total = r["count"].as_u64().unwrap_or(0);
            let mongo_total =
                events.count_documents(mongodb::bson::doc! {}).await.context("counting MongoDB documents")?;
            return Ok(StoreCounts { es_docs, mongo_docs, es_total, mongo_total, es_invalid, mongo_invalid });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_job_is_reported_by_its_deepest_cause() {
        let v = serde_json::json!({"errors": [
            "org.apache.flink.runtime.rest.handler.RestHandlerException: Could not execute application.\n\tat x\nCaused by: org.apache.flink.client.program.ProgramInvocationException: The main method caused an error\n\tat y\nCaused by: java.lang.IllegalArgumentException: --rpc-batch-size: -3 must be > 0\n\tat z"
        ]});
        assert_eq!(rest_error(&v), "java.lang.IllegalArgumentException: --rpc-batch-size: -3 must be > 0");
        assert_eq!(rest_error(&serde_json::json!({"errors": ["Not found: /jars/x"]})), "Not found: /jars/x");
        assert_eq!(rest_error(&serde_json::json!({})), "{}");
    }
}
