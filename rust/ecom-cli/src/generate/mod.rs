//! `ecom generate`: the synthetic shop into Kafka (events, catalog, truth) with an idempotent,
//! batching producer, or into files; a progress bar and a closing summary with the oracle AUC.
use anyhow::Context;
use ecom_core::now_ms;
use ecom_gen::{AnomalyRates, GenConfig, GenRecord, Generator, Payload};
use ecom_proto::v1::{truth_record, EventKind, TruthRecord};
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod files;
mod kafka;
use files::to_files;
use kafka::to_kafka;

/// Whose clock event times follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TimeMode {
    /// Simulated: event times start at --start-ms and run as fast as records are made
    /// (replay a week in minutes).
    Sim,
    /// Wall clock: the simulation starts now and records leave when their event time comes.
    Wall,
}

/// The generator's drift scenario (docs/GENERATOR.md, Drift), for `ecom generate` and
/// `ecom demo`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DriftArgs {
    /// After this many records, every new session changes: its purchase log-odds at its
    /// decision move by --drift-decision-logit (behaviour before it unchanged, so the live
    /// quality shows it and the features do not), and its product views are multiplied by
    /// --drift-views-factor (the features move).
    #[arg(long)]
    pub(crate) drift_after_records: Option<u64>,
    /// What the drift adds to the purchase log-odds at the decision (a competitor's sale: < 0).
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    pub(crate) drift_decision_logit: f64,
    /// What the drift multiplies every persona's product views by (a redesign showing more
    /// products: > 1; 1 leaves behaviour as it was).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) drift_views_factor: f64,
}

/// Arguments of `ecom generate`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct GenerateArgs {
    /// Number of raw records to produce (valid + malformed).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) events: u64,
    /// Stop after this many seconds even if --events is not reached.
    #[arg(long, visible_alias = "duration")]
    pub(crate) duration_secs: Option<f64>,
    /// Seed: the same seed, events and options give byte-identical output.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Share of deliberately malformed records, in [0, 1].
    #[arg(long, default_value_t = 0.02)]
    pub(crate) malformed_rate: f64,
    /// Share of records delayed a little (out of order but valid), in [0, 1].
    #[arg(long, default_value_t = 0.01)]
    pub(crate) out_of_order_rate: f64,
    /// Share of exact duplicates of a just-sent event, in [0, 1] (labelled DUPLICATE; the job
    /// rejects them). Off by default so training files stay clean; `ecom demo` turns it on.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) duplicate_rate: f64,
    /// Share of events hours behind the watermark, in [0, 1] (labelled LATE; the job routes
    /// them to ecom.events.invalid). Off by default; `ecom demo` turns it on.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) late_rate: f64,
    /// Share of hostile records, in [0, 1]: valid events stuffed with an unknown field to just
    /// under the job's record limit, valid events stamped ~290 s ahead of the producer's clock,
    /// and events padded to near the producer's request limit (labelled OVERSIZE_RECORD). Off
    /// by default; `ecom demo` turns it on.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) hostile_rate: f64,
    /// Sessions starting per hour at the daily peak (the simulated shop's traffic; the rate
    /// follows the time of day and week below it).
    #[arg(long, default_value_t = GenConfig::default().peak_sessions_per_hour)]
    pub(crate) peak_sessions_per_hour: f64,
    #[command(flatten)]
    pub(crate) drift: DriftArgs,
    /// Multiplies the default anomaly rates (0 turns anomalies off).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) anomaly_scale: f64,
    /// Products in the catalog.
    #[arg(long, default_value_t = 2_400)]
    pub(crate) products: usize,
    /// Event time of the simulation start, ms since epoch (sim mode; default 2026-01-01).
    #[arg(long)]
    pub(crate) start_ms: Option<i64>,
    /// Simulated time or wall-clock time.
    #[arg(long, value_enum, default_value_t = TimeMode::Sim)]
    pub(crate) time: TimeMode,
    /// Records per second at most (default: as fast as possible).
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Write files into this directory instead of producing to Kafka.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// With --out: only the protobuf files training reads, not their .jsonl copies (about two
    /// thirds of the bytes; for large sets).
    #[arg(long, requires = "out")]
    pub(crate) no_jsonl: bool,
    #[command(flatten)]
    pub(crate) kafka: crate::stack::KafkaArgs,
    /// Topic for the raw events (the job's --raw-topic).
    #[arg(long = "raw-topic", visible_alias = "topic", default_value = ecom_core::topics::RAW)]
    pub(crate) topic: String,
    /// Topic for the catalog (compacted, key = product_id).
    #[arg(long, default_value = ecom_core::topics::CATALOG)]
    pub(crate) catalog_topic: String,
    /// Topic for the truth (evaluation only).
    #[arg(long, default_value = ecom_core::topics::TRUTH)]
    pub(crate) truth_topic: String,
    /// Hide the progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// A rate schedule for callers inside the binary (`ecom bench e2e`'s ladder): (records/s,
    /// records) steps in order, the records after the last step unpaced; `rate` when empty.
    #[arg(skip)]
    pub(crate) rate_steps: Vec<(f64, u64)>,
    /// Set by a caller inside the binary to end the run before the next record.
    #[arg(skip)]
    pub(crate) stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl GenerateArgs {
    /// The command line's defaults (one source: the clap attributes above) with the given
    /// values, for callers inside the binary.
    pub(crate) fn with(events: u64, seed: u64, malformed_rate: f64, start_ms: Option<i64>, brokers: &str) -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            args: GenerateArgs,
        }
        let mut a = <Defaults as clap::Parser>::try_parse_from(["generate"]).expect("the defaults parse").args;
        a.events = events;
        a.seed = seed;
        a.malformed_rate = malformed_rate;
        a.start_ms = start_ms;
        a.kafka.brokers = brokers.to_string();
        a
    }

    pub(crate) fn config(&self) -> anyhow::Result<GenConfig> {
        for (name, v) in [
            ("--malformed-rate", self.malformed_rate),
            ("--out-of-order-rate", self.out_of_order_rate),
            ("--duplicate-rate", self.duplicate_rate),
            ("--late-rate", self.late_rate),
            ("--hostile-rate", self.hostile_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(crate::exit::config(format!("{name} {v} is outside [0, 1]")));
            }
        }
        if !(self.peak_sessions_per_hour > 0.0 && self.peak_sessions_per_hour.is_finite()) {
            return Err(crate::exit::config(format!(
                "--peak-sessions-per-hour {} must be > 0",
                self.peak_sessions_per_hour
            )));
        }
        if self.anomaly_scale < 0.0 {
            return Err(crate::exit::config(format!("--anomaly-scale {} must be >= 0", self.anomaly_scale)));
        }
        let views = self.drift.drift_views_factor;
        if !(views > 0.0 && views.is_finite()) {
            return Err(crate::exit::config(format!("--drift-views-factor {views} must be a positive number")));
        }
        let d = GenConfig::default();
        let a = AnomalyRates::default();
        let s = self.anomaly_scale;
        let start_ms = match self.time {
            TimeMode::Wall => now_ms(),
            TimeMode::Sim => self.start_ms.unwrap_or(d.start_ms),
        };
        Ok(GenConfig {
            events: self.events,
            seed: self.seed,
            start_ms,
            products: self.products,
            malformed_rate: self.malformed_rate,
            out_of_order_rate: self.out_of_order_rate,
            duplicate_rate: self.duplicate_rate,
            late_rate: self.late_rate,
            hostile_rate: self.hostile_rate,
            peak_sessions_per_hour: self.peak_sessions_per_hour,
            anomaly_rates: AnomalyRates {
                crawler: a.crawler * s,
                headless: a.headless * s,
                credential_stuffing: a.credential_stuffing * s,
                card_testing: a.card_testing * s,
                cart_abandon_storm: a.cart_abandon_storm * s,
            },
            drift: self.drift.drift_after_records.map(|after_records| ecom_gen::Drift {
                after_records,
                decision_logit: self.drift.drift_decision_logit,
                views_factor: self.drift.drift_views_factor,
            }),
            ..d
        })
    }
}

/// What a generate run produced.
#[derive(Debug, Default)]
pub(crate) struct GenerateSummary {
    pub(crate) produced: u64,
    pub(crate) malformed_by_reason: BTreeMap<String, u64>,
    /// Hostile records by class (`malformed::Hostile::as_str`).
    pub(crate) hostile: BTreeMap<String, u64>,
    pub(crate) kinds: BTreeMap<String, u64>,
    pub(crate) sessions: u64,
    pub(crate) truncated_sessions: u64,
    pub(crate) purchasing_sessions: u64,
    pub(crate) anomalies: BTreeMap<String, u64>,
    pub(crate) oracle_auc: Option<f64>,
    /// Kafka (partition, offset) of every produced event record → the RejectReason number it
    /// is labelled with (0: valid), so a consumer can check each output against its own label.
    pub(crate) positions: HashMap<(i32, i64), i32>,
    pub(crate) seconds: f64,
    /// The latest event time of an event record (ms since epoch; 0 when none).
    pub(crate) last_event_ms: i64,
    /// When the first record went to Kafka (ms since epoch; 0 for files): a rate schedule
    /// counts from there.
    pub(crate) first_produced_ms: i64,
    /// (true probability, outcome) of ordinary complete sessions, for the oracle AUC.
    oracle_points: Vec<(f64, bool)>,
}

impl GenerateSummary {
    fn note_record(&mut self, r: &GenRecord) {
        if let Payload::Event(e) = &r.payload {
            self.last_event_ms = self.last_event_ms.max(e.event_time_ms);
        }
        if let Some(h) = r.hostile {
            *self.hostile.entry(h.as_str().to_string()).or_default() += 1;
        }
        match (&r.payload, r.expected_reject) {
            (_, Some(reason)) => *self.malformed_by_reason.entry(reason.as_str_name().to_string()).or_default() += 1,
            (Payload::Event(e), None) => {
                let k = EventKind::try_from(e.kind).map(|k| k.as_str_name()).unwrap_or("?");
                *self.kinds.entry(k.trim_start_matches("EVENT_KIND_").to_ascii_lowercase()).or_default() += 1;
            }
            (Payload::Bytes(_), None) => {}
        }
    }

    fn note_truth(&mut self, t: &[TruthRecord]) {
        for r in t {
            if let Some(truth_record::Record::Session(s)) = &r.record {
                self.sessions += 1;
                self.truncated_sessions += u64::from(s.truncated);
                self.purchasing_sessions += u64::from(s.purchased && !s.truncated);
                if s.anomaly != 0 {
                    let name = ecom_proto::v1::Anomaly::try_from(s.anomaly).map(|a| a.as_str_name()).unwrap_or("?");
                    *self.anomalies.entry(name.trim_start_matches("ANOMALY_").to_ascii_lowercase()).or_default() += 1;
                }
            }
        }
        self.oracle_points.extend(t.iter().filter_map(ecom_gen::oracle_point));
    }

    fn print(&self, target: &str, oracle_on_stdout: bool) {
        let malformed: u64 = self.malformed_by_reason.values().sum();
        eprintln!(
            "generated {} records into {target} ({} valid, {malformed} malformed) in {:.1}s ({:.0} records/s)",
            self.produced,
            self.produced - malformed,
            self.seconds,
            self.produced as f64 / self.seconds.max(1e-9)
        );
        eprintln!("  events by kind: {}", fmt_counts(&self.kinds));
        eprintln!(
            "  sessions: {} ({} cut short by --events), purchase rate {:.2}%",
            self.sessions,
            self.truncated_sessions,
            100.0 * self.purchasing_sessions as f64 / (self.sessions - self.truncated_sessions).max(1) as f64
        );
        eprintln!(
            "  anomalous sessions: {}",
            if self.anomalies.is_empty() { "none".into() } else { fmt_counts(&self.anomalies) }
        );
        eprintln!(
            "  malformed: {}",
            if self.malformed_by_reason.is_empty() { "none".into() } else { fmt_counts(&self.malformed_by_reason) }
        );
        if !self.hostile.is_empty() {
            eprintln!("  hostile: {}", fmt_counts(&self.hostile));
        }
        let oracle = match self.oracle_auc {
            Some(a) => format!("oracle_auc: {a:.4}"),
            None => "oracle_auc: n/a (no complete ordinary sessions with both outcomes)".into(),
        };
        if oracle_on_stdout {
            println!("{oracle}");
        } else {
            eprintln!("  {oracle}");
        }
    }
}

/// `k=v k=v` for a summary line.
pub(crate) fn fmt_counts(m: &BTreeMap<String, u64>) -> String {
    m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// Paces records: at most each step's rate per second (unpaced after the last step), and in
/// wall mode not before their event time.
struct Pacer {
    /// When the first record was asked about: the schedule counts from there, not from the
    /// generator's setup.
    started: std::sync::OnceLock<Instant>,
    /// (records/s, records) in order.
    steps: Vec<(f64, u64)>,
    wall: bool,
}

impl Pacer {
    fn new(a: &GenerateArgs) -> Self {
        let steps = match (a.rate_steps.is_empty(), a.rate) {
            (false, _) => a.rate_steps.clone(),
            (true, Some(rate)) => vec![(rate, u64::MAX)],
            (true, None) => Vec::new(),
        };
        Pacer { started: std::sync::OnceLock::new(), steps, wall: a.time == TimeMode::Wall }
    }

    /// Seconds after the start at which record `n` is due, None when unpaced. The records
    /// after the last step are all due when it ends, so a full-speed burst begins on time.
    fn due_secs(&self, n: u64) -> Option<f64> {
        let (mut first, mut offset) = (0u64, 0.0f64);
        for &(rate, records) in &self.steps {
            if n - first < records {
                return Some(offset + (n - first) as f64 / rate);
            }
            first += records;
            offset += records as f64 / rate;
        }
        (!self.steps.is_empty()).then_some(offset)
    }

    /// How long record `n` must still wait.
    fn delay(&self, n: u64, event_time_ms: Option<i64>) -> Duration {
        let mut wait = Duration::ZERO;
        if let Some(secs) = self.due_secs(n) {
            let due = *self.started.get_or_init(Instant::now) + Duration::from_secs_f64(secs);
            wait = due.saturating_duration_since(Instant::now());
        }
        if let (true, Some(t)) = (self.wall, event_time_ms) {
            wait = wait.max(Duration::from_millis((t - now_ms()).max(0) as u64));
        }
        wait
    }
}

fn bar(n: u64, quiet: bool) -> ProgressBar {
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(n) };
    bar.set_style(
        ProgressStyle::with_template("generate {bar:30} {pos}/{len} records {per_sec} eta {eta}")
            .expect("static template"),
    );
    bar
}

pub(crate) async fn run(a: GenerateArgs) -> anyhow::Result<GenerateSummary> {
    run_with(a, true).await
}

/// `run`, the closing `oracle_auc:` line on stdout (`ecom generate`'s machine-readable line) or,
/// for a caller whose stdout is its own (`ecom demo --json`), on stderr with the rest.
pub(crate) async fn run_with(a: GenerateArgs, oracle_on_stdout: bool) -> anyhow::Result<GenerateSummary> {
    let summary = generate(a.clone()).await?;
    summary.print(a.out.as_ref().map_or(a.topic.clone(), |d| d.display().to_string()).as_str(), oracle_on_stdout);
    Ok(summary)
}

/// `run` without the closing summary.
pub(crate) async fn generate(a: GenerateArgs) -> anyhow::Result<GenerateSummary> {
    let cfg = a.config()?;
    match a.out.clone() {
        Some(dir) => to_files(&a, cfg, &dir).await,
        // Blocking: it runs its own two threads (see `to_kafka`).
        None => tokio::task::spawn_blocking(move || to_kafka(&a, cfg)).await.context("the generate task panicked")?,
    }
}

fn event_time(rec: &GenRecord) -> Option<i64> {
    match &rec.payload {
        Payload::Event(e) => Some(e.event_time_ms),
        Payload::Bytes(_) => None,
    }
}

/// Limits shared by both outputs: pacing, --duration-secs, progress.
struct Run {
    pacer: Pacer,
    deadline: Option<Instant>,
    bar: ProgressBar,
    started: Instant,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Run {
    fn new(a: &GenerateArgs) -> Self {
        let now = Instant::now();
        Self {
            pacer: Pacer::new(a),
            deadline: a.duration_secs.map(|d| now + Duration::from_secs_f64(d)),
            bar: bar(a.events, a.quiet),
            started: now,
            stop: a.stop.clone(),
        }
    }

    fn over(&self, n: u64) -> bool {
        if self.stop.as_ref().is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)) {
            return true;
        }
        let over = self.deadline.is_some_and(|d| Instant::now() >= d);
        if over {
            self.bar.println(format!("--duration-secs reached after {n} records"));
        }
        over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_ladder_paces_each_step_and_sends_the_rest_when_it_ends() {
        let mut a = GenerateArgs::with(1_000, 1, 0.0, None, "127.0.0.1:9092");
        a.rate_steps = vec![(10.0, 20), (100.0, 100)];
        let p = Pacer::new(&a);
        assert_eq!(p.due_secs(0), Some(0.0));
        assert_eq!(p.due_secs(10), Some(1.0));
        // The second step starts after the first's 2 s, at its own rate.
        assert_eq!(p.due_secs(20), Some(2.0));
        assert_eq!(p.due_secs(70), Some(2.5));
        assert_eq!(p.due_secs(120), Some(3.0));
        assert_eq!(p.due_secs(5_000), Some(3.0));
        a.rate_steps.clear();
        a.rate = Some(50.0);
        assert_eq!(Pacer::new(&a).due_secs(1_000_000), Some(20_000.0));
        a.rate = None;
        assert_eq!(Pacer::new(&a).due_secs(0), None);
    }
}
