//! `ecom faults`: the fault suite. Runs the pipeline of `ecom demo` (serve, sink, the Flink job)
//! and, one scenario at a time, produces records at a fixed rate and breaks one real part while
//! they flow: SIGKILL, a stopped server, a restarted broker, a closed index. After each it
//! reconciles from Kafka and the stores themselves (lost, duplicated, dead-lettered), times the
//! recovery and reports the peak memory of each process. Servers are stopped and started with
//! the dev/ scripts (dev/down SERVICE, dev/up, dev/crash-taskmanager).
use crate::demo::{self, DemoArgs};
use crate::generate::{self, GenerateArgs, GenerateSummary};
use anyhow::{bail, Context};
use clap::ValueEnum;
use ecom_core::now_ms;
use ecom_core::topics::{ENRICHED, INVALID, RAW};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod inject;
mod offsets;
use inject::{inject, sample_memory, stack_cmd};
use offsets::caught_up;

/// One way to break the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Scenario {
    /// SIGKILL the Flink TaskManager and start a new one (dev/crash-taskmanager).
    TaskmanagerKill,
    /// SIGKILL ecom sink three times, 10 s apart, starting it again at once each time (as a
    /// supervisor would).
    SinkKill,
    /// SIGKILL ecom serve; start it again after --outage-secs.
    ServeKill,
    /// Stop Elasticsearch for --outage-secs, then start it.
    ElasticsearchStop,
    /// Stop the MongoDB-protocol server (FerretDB) for --outage-secs, then start it.
    MongodbStop,
    /// Stop Redis for --outage-secs, then start it.
    RedisStop,
    /// Stop the Kafka broker (SIGTERM) and start it again at once.
    KafkaRestart,
    /// Freeze the Kafka broker (SIGSTOP) for --outage-secs, then resume it (SIGCONT): every
    /// client keeps its connections to a broker that answers nothing, past the sink's session
    /// timeout and the job's transaction and request timeouts.
    KafkaFreeze,
    /// Stop Elasticsearch, restart ecom sink while it is down (it must start, unhealthy), start
    /// Elasticsearch after --outage-secs.
    SinkStartEsDown,
    /// Close the run's event indices for --outage-secs (Elasticsearch refuses every event
    /// document for good), reopen them, then `ecom replay` the sink's dead letters.
    IndexClosed,
}

/// Arguments of `ecom faults`; the pipeline's own options are `ecom demo`'s (--events is per
/// scenario).
#[derive(Debug, clap::Args)]
pub(crate) struct FaultsArgs {
    /// Scenarios to run, in order, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    scenario: Vec<Scenario>,
    /// How long a stopped server or a closed index stays away.
    #[arg(long, default_value_t = 60)]
    outage_secs: u64,
    /// Seconds into a scenario's production before the fault.
    #[arg(long, default_value_t = 20)]
    fault_after_secs: u64,
    /// Longest wait for the pipeline to catch up once the broken part is back.
    #[arg(long, default_value_t = 300)]
    recovery_timeout_secs: u64,
    /// Also write the results table (Markdown) to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The repository root (its dev/ scripts stop and start the local stack's servers).
    #[arg(long, env = "ECOM_ROOT")]
    root: Option<PathBuf>,
    #[command(flatten)]
    demo: DemoArgs,
}

/// The outcome of one scenario: one row of the table.
#[derive(Debug, Default)]
struct Row {
    scenario: String,
    produced: u64,
    enriched: u64,
    invalid: u64,
    lost: u64,
    duplicated: u64,
    dead_lettered: u64,
    replayed: u64,
    fallbacks: u64,
    /// From the part being back to every record produced before then being in both stores.
    recovery_secs: Option<f64>,
    /// From the part being back to the last event that still got a serve fallback.
    fallback_tail_secs: Option<f64>,
    /// Peak resident memory (VmHWM) per process, MiB.
    peak_mib: BTreeMap<String, f64>,
    /// What the operator saw along the way (health answers, ...).
    notes: Vec<String>,
    /// Why the scenario failed; empty when it passed.
    problems: Vec<String>,
}

/// serve and sink as child processes the suite can kill and start again.
struct Services {
    exe: PathBuf,
    logs: PathBuf,
    children: crate::services::Children,
    pids: Arc<Mutex<HashMap<String, u32>>>,
}

impl Services {
    fn start(&mut self, name: &str, a: &DemoArgs) -> anyhow::Result<()> {
        let child = demo::spawn_service(&self.exe, name, a, &self.logs)?;
        if let Some(pid) = child.id() {
            self.pids.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), pid);
        }
        self.children.0.push((name.to_string(), child));
        Ok(())
    }

    async fn kill(&mut self, name: &str) {
        if let Some(i) = self.children.0.iter().position(|(n, _)| n == name) {
            let (_, mut child) = self.children.0.remove(i);
            let _ = child.kill().await; // SIGKILL, then reaped
        }
    }

    async fn wait_healthy(&mut self, http: &reqwest::Client, name: &str, a: &DemoArgs) -> anyhow::Result<()> {
        let url = if name == "serve" { a.serve_health() } else { a.sink_health() };
        let log = self.logs.join(format!("{name}.log"));
        crate::services::wait_http(http, &url, &format!("ecom {name}"), &log, &mut self.children).await
    }
}

impl FaultsArgs {
    /// Records per second the generator keeps to in every scenario (--rate, default 100).
    fn rate(&self) -> f64 {
        self.demo.rate.unwrap_or(100.0)
    }
}

pub(crate) async fn run(f: FaultsArgs) -> anyhow::Result<()> {
    if !(f.rate() > 0.0 && f.rate().is_finite()) {
        return Err(crate::exit::config(format!(
            "--rate {}: every scenario produces at a fixed rate, which must be > 0",
            f.rate()
        )));
    }
    let f = Arc::new(f);
    let scenarios = if f.scenario.is_empty() { Scenario::value_variants().to_vec() } else { f.scenario.clone() };
    let root = f.root.clone().context("the repository root is not set: run through dev/faults or pass --root")?;
    let a = &f.demo;
    let logs = a.logs("faults")?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    crate::check::require_servers(&a.cluster, &a.es, &a.mongo, &a.redis, &http).await?;
    if ecom_model::current(&a.models_dir).is_none() {
        return Err(crate::exit::config(format!(
            "no model in {} (models/CURRENT): dev/faults trains one first",
            a.models_dir.display()
        )));
    }
    a.ports_free().await?;
    let exe = std::env::current_exe().context("locating the ecom binary")?;
    let mut svc = Services {
        exe,
        logs: logs.clone(),
        children: crate::services::Children(Vec::new()),
        pids: Arc::new(Mutex::new(HashMap::new())),
    };
    for name in ["serve", "sink"] {
        svc.start(name, a)?;
    }
    for name in ["serve", "sink"] {
        svc.wait_healthy(&http, name, a).await?;
    }
    let flink = a.cluster.flink();
    let job = flink.submit(&http, a.parallelism, &a.job_args()).await?;

    // Each scenario's events follow the last one's in event time (earlier ones would be LATE
    // behind the job's watermark), and all end before now.
    let slot_ms = a.events as i64 * 6_000 + 2 * 3_600_000;
    let mut next_start = now_ms() - 2 * 3_600_000 - slot_ms * scenarios.len() as i64;
    let seed0 = a.seed.unwrap_or_else(|| now_ms() as u64);
    let mut rows = Vec::new();
    for (i, sc) in scenarios.iter().enumerate() {
        let name = sc.to_possible_value().map_or_else(|| format!("{sc:?}"), |v| v.get_name().to_string());
        eprintln!("==> scenario {}/{}: {name}", i + 1, scenarios.len());
        let started = Instant::now();
        let mut row = Row { scenario: name.clone(), ..Default::default() };
        let gen = match scenario(&f, *sc, &mut svc, &http, &root, seed0 + i as u64, next_start, &mut row).await {
            Ok(g) => Some(g),
            Err(e) => {
                row.problems.push(format!("{e:#}"));
                None
            }
        };
        next_start = gen.map_or(next_start + slot_ms, |g| (g.last_event_ms + 2 * 3_600_000).max(next_start + slot_ms));
        // A server a failed scenario left stopped would fail every later one.
        if let Err(e) = stack_cmd(&root, "dev/up", &[], &logs).await {
            row.problems.push(format!("the stack did not come back: {e:#}"));
        }
        for name in ["serve", "sink"] {
            if !svc.children.0.iter().any(|(n, _)| n == name) {
                let _ = svc.start(name, a);
            }
        }
        let verdict = if row.problems.is_empty() { "passed" } else { "FAILED" };
        eprintln!("    {name}: {verdict} in {:.0} s {}", started.elapsed().as_secs_f64(), row.problems.join("; "));
        rows.push(row);
    }
    svc.children.stop().await;
    flink.cancel(&http, &job).await;

    let table = table(&f, &rows);
    println!("{table}");
    if let Some(p) = &f.report {
        std::fs::write(p, &table).with_context(|| format!("writing {}", p.display()))?;
    }
    let failed: Vec<&str> = rows.iter().filter(|r| !r.problems.is_empty()).map(|r| r.scenario.as_str()).collect();
    if failed.is_empty() {
        println!("all {} scenarios passed", rows.len());
        Ok(())
    } else {
        Err(crate::exit::unreconciled(format!(
            "{} of {} scenarios failed: {}",
            failed.len(),
            rows.len(),
            failed.join(", ")
        )))
    }
}

/// Runs one scenario and fills `row`; Err when it could not be run or counted at all.
#[allow(clippy::too_many_arguments)]
async fn scenario(
    f: &Arc<FaultsArgs>,
    sc: Scenario,
    svc: &mut Services,
    http: &reqwest::Client,
    root: &Path,
    seed: u64,
    start_ms: i64,
    row: &mut Row,
) -> anyhow::Result<GenerateSummary> {
    let a = &f.demo;
    let t0 = Instant::now();
    let at = |what: &str| eprintln!("    {:>4.0} s  {what}", t0.elapsed().as_secs_f64());
    let brokers = a.cluster.brokers.clone();
    let out_start = demo::end_offsets(&brokers, &[ENRICHED, INVALID])?;
    let began_ms = now_ms();
    let mut g = GenerateArgs::with(a.events, seed, a.malformed_rate, Some(start_ms), &brokers);
    (g.duplicate_rate, g.late_rate, g.hostile_rate) = (a.duplicate_rate, a.late_rate, a.hostile_rate);
    g.peak_sessions_per_hour = a.peak_sessions_per_hour;
    g.rate = Some(f.rate());
    g.quiet = true;
    let producing = tokio::spawn(generate::generate(g));
    let (stop_sampling, peaks) = sample_memory(svc.pids.clone());

    tokio::time::sleep(Duration::from_secs(f.fault_after_secs)).await;
    at("breaking it");
    let fault = inject(f, sc, svc, http, root, start_ms, &mut row.notes).await;
    let back = Instant::now();
    let back_ms = now_ms();
    at("the broken part is back; timing the catch-up");
    let catch_up = {
        let (brokers, limit) = (brokers.clone(), Duration::from_secs(f.recovery_timeout_secs));
        tokio::task::spawn_blocking(move || caught_up(&brokers, back, limit))
    };
    let gen = producing.await.context("the generator task")?.context("producing the scenario's records")?;
    fault?;
    at(&format!("{} records produced", gen.produced));
    let gen = Arc::new(gen);
    let outcome = {
        let (f, gen, rt) = (f.clone(), gen.clone(), tokio::runtime::Handle::current());
        tokio::task::spawn_blocking(move || rt.block_on(demo::collect_outputs(&f.demo, &gen, &out_start)))
            .await
            .context("reading the job's outputs")??
    };
    at("every record came out of the job");
    row.recovery_secs = catch_up.await.context("timing the catch-up")?.map(|d| d.as_secs_f64());
    if row.recovery_secs.is_none() {
        row.problems.push(format!("not caught up {} s after the part was back", f.recovery_timeout_secs));
    }
    if outcome.last_fallback_at_ms > back_ms {
        row.fallback_tail_secs = Some((outcome.last_fallback_at_ms - back_ms) as f64 / 1000.0);
    }
    row.fallbacks = outcome.guard_fallbacks + outcome.score_fallbacks;

    // Everything the sink refused for good is in its dead letter; once the cause is gone,
    // `ecom replay` stores it.
    let mongo_url = a.mongo.url()?;
    let stores = ecom_sink::stores::Stores::at(&a.es.url()?, &mongo_url, "ecom", "ecom").await?;
    let run_ids: std::collections::HashSet<String> = ["elasticsearch", "mongodb"]
        .iter()
        .flat_map(|s| {
            let events = outcome.enriched_ids.iter().map(move |id| format!("{s}/events/{id}"));
            events.chain(outcome.invalid_ids.iter().map(move |id| format!("{s}/invalid/{id}")))
        })
        .collect();
    let dead_letters = mongodb::Client::with_uri_str(mongo_url.expose())
        .await?
        .database("ecom")
        .collection::<mongodb::bson::Document>(ecom_sink::stores::DEADLETTER_COLLECTION);
    // The dead letters written since the scenario began (a small collection), then this run's.
    let mut cursor = dead_letters
        .find(mongodb::bson::doc! {"at_ms": {"$gte": began_ms}})
        .projection(mongodb::bson::doc! {"_id": 1})
        .await
        .context("reading the sink dead letter")?;
    let mut dead = 0;
    while cursor.advance().await.context("reading the sink dead letter")? {
        let d = cursor.deserialize_current()?;
        dead += u64::from(d.get_str("_id").is_ok_and(|id| run_ids.contains(id)));
    }
    row.dead_lettered = dead;
    if dead > 0 {
        let filter = ecom_sink::stores::ReplayFilter { since_ms: Some(began_ms), ..Default::default() };
        let r = stores.replay(&filter).await.context("replaying the sink's dead letters")?;
        row.replayed = r.replayed;
        if r.refused > 0 {
            row.problems.push(format!(
                "{} dead letters refused again: {}",
                r.refused,
                r.first_refusal.unwrap_or_default()
            ));
        }
    }
    let s = demo::count_stores(a, &outcome, false).await?;
    at("counted in the stores");
    stop_sampling.store(true, std::sync::atomic::Ordering::Relaxed);
    row.peak_mib = peaks.lock().unwrap_or_else(|p| p.into_inner()).clone();

    row.produced = gen.produced;
    row.enriched = outcome.enriched_ids.len() as u64;
    row.invalid = outcome.invalid as u64;
    row.duplicated = outcome.duplicates;
    let missing = |have: u64, want: u64| want.saturating_sub(have);
    row.lost = row.produced.saturating_sub(row.enriched + row.invalid)
        + missing(s.es_events, row.enriched)
        + missing(s.mongo_events, row.enriched)
        + missing(s.es_dead_letters, row.invalid)
        + missing(s.mongo_dead_letters, row.invalid);
    if row.lost > 0 {
        row.problems.push(format!(
            "lost {}: Elasticsearch {}/{} events {}/{} rejected, MongoDB {}/{} events {}/{} rejected",
            row.lost,
            s.es_events,
            row.enriched,
            s.es_dead_letters,
            row.invalid,
            s.mongo_events,
            row.enriched,
            s.mongo_dead_letters,
            row.invalid
        ));
    }
    if row.duplicated > 0 {
        row.problems.push(format!("{} raw records came out twice", row.duplicated));
    }
    if outcome.mislabelled > 0 {
        row.problems.push(format!(
            "{} records did not get their own label: {}",
            outcome.mislabelled,
            outcome.mislabelled_examples.join("; ")
        ));
    }
    if sc == Scenario::IndexClosed && row.dead_lettered == 0 {
        row.problems.push("no document went to the dead letter while the index was closed".into());
    }
    if let Some((name, status)) = svc.children.exited() {
        row.problems.push(format!("ecom {name} exited by itself ({status})"));
        svc.kill(&name).await;
    }
    Ok(Arc::try_unwrap(gen).unwrap_or_default())
}

/// The results as a Markdown table with the command's settings.
fn table(f: &FaultsArgs, rows: &[Row]) -> String {
    let mut t = format!(
        "Fault suite: {} records per scenario at {} records/s, fault {} s in, outages {} s ({} malformed).\n\n",
        f.demo.events,
        f.rate(),
        f.fault_after_secs,
        f.outage_secs,
        f.demo.malformed_rate
    );
    t.push_str("| scenario | events | enriched / rejected | lost | duplicated | dead-lettered (replayed) | serve fallbacks | recovery | peak memory MiB | result |\n");
    t.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n");
    for r in rows {
        let rec = r.recovery_secs.map_or("-".into(), |s| format!("{s:.1} s"));
        let tail = r.fallback_tail_secs.map_or(String::new(), |s| format!(" (fallbacks until {s:.1} s after)"));
        let mem = r.peak_mib.iter().map(|(n, m)| format!("{n} {m:.0}")).collect::<Vec<_>>().join(", ");
        let mut result =
            if r.problems.is_empty() { "passed".to_string() } else { format!("FAILED: {}", r.problems.join("; ")) };
        if !r.notes.is_empty() {
            result.push_str(&format!(" ({})", r.notes.join("; ")));
        }
        t.push_str(&format!(
            "| {} | {} | {} / {} | {} | {} | {} ({}) | {} | {rec}{tail} | {mem} | {} |\n",
            r.scenario,
            r.produced,
            r.enriched,
            r.invalid,
            r.lost,
            r.duplicated,
            r.dead_lettered,
            r.replayed,
            r.fallbacks,
            result.replace('|', "/").replace('\n', " ")
        ));
    }
    t
}
