//! `ecom generate`: the synthetic shop into Kafka (events, catalog, truth) with an idempotent,
//! batching producer, or into files; a progress bar and a closing summary with the oracle AUC.
use anyhow::Context;
use ecom_gen::{AnomalyRates, GenConfig, GenRecord, Generator, Payload};
use ecom_proto::v1::{truth_record, Event, EventKind, TruthRecord};
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Whose clock event times follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TimeMode {
    /// Simulated: event times start at --start-ms and run as fast as records are made
    /// (replay a week in minutes).
    Sim,
    /// Wall clock: the simulation starts now and records leave when their event time comes.
    Wall,
}

/// Arguments of `ecom generate`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct GenerateArgs {
    /// Number of raw records to produce (valid + malformed).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) events: u64,
    /// Stop after this many seconds even if --events is not reached.
    #[arg(long)]
    pub(crate) duration: Option<f64>,
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
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092", env = "KAFKA_BOOTSTRAP")]
    pub(crate) brokers: String,
    /// Topic for the events.
    #[arg(long, default_value = "ecom.events.raw")]
    pub(crate) topic: String,
    /// Topic for the catalog (compacted, key = product_id).
    #[arg(long, default_value = "ecom.catalog")]
    pub(crate) catalog_topic: String,
    /// Topic for the truth (evaluation only).
    #[arg(long, default_value = "ecom.truth")]
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
        a.brokers = brokers.to_string();
        a
    }

    fn config(&self) -> anyhow::Result<GenConfig> {
        for (name, v) in [
            ("--malformed-rate", self.malformed_rate),
            ("--out-of-order-rate", self.out_of_order_rate),
            ("--duplicate-rate", self.duplicate_rate),
            ("--late-rate", self.late_rate),
            ("--hostile-rate", self.hostile_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                anyhow::bail!("{name} {v} is outside [0, 1]");
            }
        }
        if !(self.peak_sessions_per_hour > 0.0 && self.peak_sessions_per_hour.is_finite()) {
            anyhow::bail!("--peak-sessions-per-hour {} must be > 0", self.peak_sessions_per_hour);
        }
        if self.anomaly_scale < 0.0 {
            anyhow::bail!("--anomaly-scale {} must be >= 0", self.anomaly_scale);
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

    fn print(&self, target: &str) {
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
        match self.oracle_auc {
            Some(a) => println!("oracle_auc: {a:.4}"),
            None => println!("oracle_auc: n/a (no complete ordinary sessions with both outcomes)"),
        }
    }
}

/// `k=v k=v` for a summary line.
pub(crate) fn fmt_counts(m: &BTreeMap<String, u64>) -> String {
    m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// The wall clock, ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
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
    let summary = generate(a.clone()).await?;
    summary.print(a.out.as_ref().map_or(a.topic.clone(), |d| d.display().to_string()).as_str());
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

/// Encodes a record's value as it goes into a file: no `produced_at_ms` (that is stamped only
/// when producing to Kafka), so files stay byte-identical across runs.
fn encode(rec: &GenRecord) -> Vec<u8> {
    match (&rec.payload, rec.clock_lead_ms) {
        // No producer clock in a file: ahead of the simulated time instead.
        (Payload::Event(e), Some(lead)) => Event { event_time_ms: e.event_time_ms + lead, ..e.clone() }.encode_to_vec(),
        (Payload::Event(e), None) => e.encode_to_vec(),
        (Payload::Bytes(b), _) => b.clone(),
    }
}

fn event_time(rec: &GenRecord) -> Option<i64> {
    match &rec.payload {
        Payload::Event(e) => Some(e.event_time_ms),
        Payload::Bytes(_) => None,
    }
}

/// Limits shared by both outputs: pacing, --duration, progress.
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
            deadline: a.duration.map(|d| now + Duration::from_secs_f64(d)),
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
            self.bar.println(format!("--duration reached after {n} records"));
        }
        over
    }
}

/// Which topic a record goes to; an event record carries the RejectReason number it is
/// labelled with (0: valid), so delivery reports map each Kafka position to its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    Events(i32),
    Catalog,
    Truth,
}

impl Dest {
    /// Index into the run's topics.
    fn topic(self) -> usize {
        match self {
            Dest::Events(_) => 0,
            Dest::Catalog => 1,
            Dest::Truth => 2,
        }
    }

    /// The delivery report's opaque value: the topic index in the low two bits, the label above.
    fn opaque(self) -> usize {
        let label = if let Dest::Events(r) = self { usize::try_from(r).unwrap_or(0) } else { 0 };
        self.topic() | label << 2
    }
}

/// Records handed from the generating thread to the producing thread.
type Batch = Vec<(Dest, String, Vec<u8>)>;
/// Records per batch; a batch also leaves early whenever pacing makes the generator wait.
const BATCH: usize = 1_024;

/// What librdkafka's delivery reports said.
#[derive(Debug, Default)]
struct Deliveries {
    /// (partition, offset) of each delivered event record, with its label.
    positions: Vec<((i32, i64), i32)>,
    failed: u64,
    first_error: Option<String>,
}

/// Collects delivery reports; they arrive on the producing thread during `poll`.
#[derive(Default)]
struct Reports(std::sync::Mutex<Deliveries>);

impl rdkafka::ClientContext for Reports {}

impl rdkafka::producer::ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, dest: usize) {
        use rdkafka::Message as _;
        let mut d = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(m) if dest & 3 == 0 => d.positions.push(((m.partition(), m.offset()), (dest >> 2) as i32)),
            Ok(_) => {} // catalog and truth: only failures matter
            Err((e, m)) => {
                d.failed += 1;
                if d.first_error.is_none() {
                    d.first_error = Some(format!("to {}: {e}", m.topic()));
                }
            }
        }
    }
}

/// Runs the generator on its own thread (generate, encode, pace, count) and produces on this
/// one, so neither waits for the other; the bounded channel keeps memory and the
/// `produced_at_ms` skew small (a few batches).
fn to_kafka(a: &GenerateArgs, cfg: GenConfig) -> anyhow::Result<GenerateSummary> {
    let producer: BaseProducer<Reports> = ecom_sink::kafka::client(&a.brokers)?
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "10")
        .set("batch.size", "262144")
        .set("queue.buffering.max.messages", "500000")
        // Rides out a broker restart: a record is given up (and the run fails, saying so) only
        // after 3 minutes without an acknowledgement.
        .set("message.timeout.ms", "180000")
        .create_with_context(Reports::default())
        .with_context(|| format!("creating a Kafka producer for {}", a.brokers))?;
    let run = Run::new(a);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(4);
    let (summary, produced) = std::thread::scope(|s| {
        let gen = s.spawn(|| generate_batches(cfg, &run, tx));
        let produced = produce_batches(a, &producer, rx, &run.bar);
        // A failed producer drops the receiver, which ends the generator too.
        (gen.join().expect("the generator thread panicked"), produced)
    });
    produced?;
    producer.flush(Duration::from_secs(190)).context("flushing the producer")?;
    let d = std::mem::take(&mut *producer.context().0.lock().unwrap_or_else(|p| p.into_inner()));
    if d.failed > 0 {
        anyhow::bail!(
            "{} records were not delivered to Kafka (first: {})",
            d.failed,
            d.first_error.unwrap_or_default()
        );
    }
    run.bar.finish_and_clear();
    let mut summary = summary?;
    summary.produced = d.positions.len() as u64;
    summary.positions = d.positions.into_iter().collect();
    summary.seconds = run.started.elapsed().as_secs_f64();
    summary.oracle_auc = ecom_gen::oracle_auc_of(summary.oracle_points.iter().copied());
    Ok(summary)
}

/// The generating side: catalog first (the job joins events against it), then events with
/// their truth, in batches.
fn generate_batches(
    cfg: GenConfig,
    run: &Run,
    tx: std::sync::mpsc::SyncSender<Batch>,
) -> anyhow::Result<GenerateSummary> {
    let mut summary = GenerateSummary::default();
    let mut gen = Generator::new(cfg);
    let catalog: Batch =
        gen.catalog().iter().map(|p| (Dest::Catalog, p.product_id.clone(), p.encode_to_vec())).collect();
    if tx.send(catalog).is_err() {
        return Ok(summary);
    }
    let mut batch = Batch::with_capacity(BATCH * 2);
    let mut n = 0u64;
    let truth = |t: TruthRecord, batch: &mut Batch, summary: &mut GenerateSummary| {
        summary.note_truth(std::slice::from_ref(&t));
        batch.push((Dest::Truth, truth_key(&t), t.encode_to_vec()));
    };
    while let Some(rec) = gen.next() {
        if run.over(n) {
            break;
        }
        let wait = run.pacer.delay(n, event_time(&rec));
        if !wait.is_zero() {
            // Hand over what is ready before sleeping, so paced records leave on time.
            if !batch.is_empty() && tx.send(std::mem::take(&mut batch)).is_err() {
                return Ok(summary);
            }
            std::thread::sleep(wait);
        }
        summary.note_record(&rec);
        if summary.first_produced_ms == 0 {
            summary.first_produced_ms = now_ms();
        }
        let value = match rec.payload {
            Payload::Event(mut e) => {
                e.produced_at_ms = now_ms();
                if let Some(lead) = rec.clock_lead_ms {
                    e.event_time_ms = e.produced_at_ms + lead;
                }
                e.encode_to_vec()
            }
            Payload::Bytes(b) => b,
        };
        batch.push((Dest::Events(rec.expected_reject.map_or(0, |r| r as i32)), rec.key, value));
        for t in gen.take_truth() {
            truth(t, &mut batch, &mut summary);
        }
        n += 1;
        if batch.len() >= BATCH && tx.send(std::mem::replace(&mut batch, Batch::with_capacity(BATCH * 2))).is_err() {
            return Ok(summary);
        }
    }
    for t in gen.take_truth() {
        truth(t, &mut batch, &mut summary);
    }
    let _ = tx.send(batch);
    Ok(summary)
}

/// The producing side: hands every record to librdkafka, polling for delivery reports.
fn produce_batches(
    a: &GenerateArgs,
    producer: &BaseProducer<Reports>,
    rx: std::sync::mpsc::Receiver<Batch>,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let topics = [a.topic.as_str(), a.catalog_topic.as_str(), a.truth_topic.as_str()];
    let delivered = || producer.context().0.lock().unwrap_or_else(|p| p.into_inner()).positions.len() as u64;
    for batch in rx {
        for (dest, key, value) in &batch {
            let mut record = BaseRecord::with_opaque_to(topics[dest.topic()], dest.opaque()).key(key).payload(value);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        // Serve delivery reports (which frees the queue) before retrying.
                        producer.poll(Duration::from_millis(5));
                    }
                    Err((e, _)) => return Err(e).context(format!("producing to {}", topics[dest.topic()])),
                }
            }
        }
        producer.poll(Duration::ZERO);
        bar.set_position(delivered());
    }
    Ok(())
}

fn truth_key(t: &TruthRecord) -> String {
    match &t.record {
        Some(truth_record::Record::Session(s)) => s.session_id.clone(),
        Some(truth_record::Record::Malformed(m)) => format!("malformed-{}", m.sequence),
        None => String::new(),
    }
}

/// File names written by `--out DIR`.
pub(crate) const FILES: [&str; 7] =
    ["events.pb", "events.jsonl", "truth.jsonl", "catalog.jsonl", "summary.json", "truth.pb", "catalog.pb"];

async fn to_files(a: &GenerateArgs, cfg: GenConfig, dir: &std::path::Path) -> anyhow::Result<GenerateSummary> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let open = |name: &str| -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
        let path = dir.join(name);
        Ok(std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        ))
    };
    let (mut pb, mut jsonl, mut truth, mut catalog) =
        (open(FILES[0])?, open(FILES[1])?, open(FILES[2])?, open(FILES[3])?);
    // The same truth and catalog as delimited protobuf, for `ecom train --from DIR`.
    let (mut truth_pb, mut catalog_pb) = (open(FILES[5])?, open(FILES[6])?);
    let mut summary = GenerateSummary::default();
    let mut gen = Generator::new(cfg);
    for p in gen.catalog() {
        writeln!(catalog, "{}", ecom_gen::json::product(p))?;
        ecom_gen::write_delimited(&mut catalog_pb, &p.encode_to_vec())?;
    }
    let run = Run::new(a);
    let mut n = 0u64;
    while let Some(rec) = gen.next() {
        if run.over(n) {
            break;
        }
        let wait = run.pacer.delay(n, event_time(&rec));
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let value = encode(&rec);
        summary.note_record(&rec);
        // events.pb: each record value with a varint length prefix (protobuf's delimited form).
        ecom_gen::write_delimited(&mut pb, &value)?;
        writeln!(jsonl, "{}", ecom_gen::json::record(&rec))?;
        let t = gen.take_truth();
        for r in &t {
            writeln!(truth, "{}", ecom_gen::json::truth(r))?;
            ecom_gen::write_delimited(&mut truth_pb, &r.encode_to_vec())?;
        }
        summary.note_truth(&t);
        summary.produced += 1;
        run.bar.inc(1);
        n += 1;
    }
    let t = gen.take_truth();
    for r in &t {
        writeln!(truth, "{}", ecom_gen::json::truth(r))?;
        ecom_gen::write_delimited(&mut truth_pb, &r.encode_to_vec())?;
    }
    summary.note_truth(&t);
    for w in [&mut pb, &mut jsonl, &mut truth, &mut catalog, &mut truth_pb, &mut catalog_pb] {
        w.flush()?;
    }
    run.bar.finish_and_clear();
    summary.seconds = run.started.elapsed().as_secs_f64();
    summary.oracle_auc = ecom_gen::oracle_auc_of(summary.oracle_points.iter().copied());
    let s = serde_json::json!({
        "records": summary.produced,
        "malformed": summary.malformed_by_reason,
        "events_by_kind": summary.kinds,
        "sessions": summary.sessions,
        "truncated_sessions": summary.truncated_sessions,
        "purchasing_sessions": summary.purchasing_sessions,
        "anomalous_sessions": summary.anomalies,
        "oracle_auc": summary.oracle_auc,
        "seed": a.seed,
    });
    std::fs::write(dir.join(FILES[4]), serde_json::to_string_pretty(&s)? + "\n")?;
    Ok(summary)
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
