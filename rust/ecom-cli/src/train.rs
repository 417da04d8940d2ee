//! `ecom train`: purchase models (see ecom-train) from the generator's files or from what the
//! pipeline stored: the sink's events in MongoDB, with the truth and the catalog from Kafka.
use anyhow::{bail, Context};
use ecom_core::lsh::LshParams;
use ecom_proto::v1::{truth_record, SessionTruth, TruthRecord};
use ecom_train::data::{LoadStats, SessionEvents};
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of `ecom train`.
#[derive(Debug, clap::Args)]
pub(crate) struct TrainArgs {
    /// Where sessions come from: a directory written by `ecom generate --out DIR`; `mongodb`
    /// for the events the sink stored (MongoDB <db>.events) with the generator's truth and the
    /// catalog read from Kafka; or `generate:EVENTS[:SEED]` for the records of `ecom generate
    /// --events EVENTS --seed SEED --malformed-rate 0` straight from the generator, nothing
    /// written (SEED 1 when left out).
    #[arg(long)]
    from: String,
    /// MongoDB of `--from mongodb`.
    #[command(flatten)]
    mongo: crate::stack::MongoArgs,
    /// Database of `--from mongodb` (the sink's --mongo-db).
    #[arg(long, default_value = "ecom")]
    mongo_db: String,
    /// What `--from mongodb` reads: the events the sink stored, folded into sessions here, or
    /// the sessions the job closed (each with its state at the decision point; one document
    /// per session, so far less to read).
    #[arg(long, value_enum, default_value_t = MongoRead::Events)]
    mongo_read: MongoRead,
    #[command(flatten)]
    kafka: crate::stack::KafkaArgs,
    /// The generator's truth topic (labels and the oracle) for `--from mongodb`.
    #[arg(long, default_value = ecom_core::topics::TRUTH)]
    truth_topic: String,
    /// Root of the model versions; models/<version>/ is written and models/CURRENT moved to it.
    #[arg(long, default_value = "models", env = "ECOM_MODELS_DIR")]
    models_dir: PathBuf,
    /// Seed of every model.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Threads for XGBoost (default: all cores).
    #[arg(long)]
    threads: Option<u32>,
    /// MinHash permutations of the neighbour features (as the job's --lsh-perm).
    #[arg(long, default_value_t = 32)]
    lsh_perm: usize,
    /// LSH bands (as the job's --lsh-bands).
    #[arg(long, default_value_t = 8)]
    lsh_bands: usize,
    /// Trees in the random forest.
    #[arg(long, default_value_t = 200)]
    forest_trees: u32,
    /// Most MLP epochs (early stopping usually ends sooner).
    #[arg(long, default_value_t = 60)]
    mlp_epochs: usize,
    /// Version name (default: v<unix seconds>).
    #[arg(long)]
    version_name: Option<String>,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// Also write the feature table the models learn from as CSV (session, user, split, label,
    /// the oracles, then each feature by name).
    #[arg(long)]
    rows_out: Option<PathBuf>,
    /// Instead of training, fit XGBoost once per feature set (a group left out, or a candidate
    /// group added) on the same split and print what each buys next to the oracles; writes no
    /// model (docs/TRAINING.md, "The gap to the oracle").
    #[arg(long, conflicts_with = "rows_out")]
    ablation: bool,
}

/// What `--from mongodb` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MongoRead {
    /// <db>.events, folded into sessions over each decision prefix as from files.
    Events,
    /// <db>.sessions: the job's closed sessions and their decision_state.
    Sessions,
}

pub(crate) fn run(a: TrainArgs) -> anyhow::Result<()> {
    let input = if a.from == "mongodb" {
        tokio::runtime::Handle::current().block_on(load_mongodb(&a))?
    } else if let Some(spec) = a.from.strip_prefix("generate:") {
        let bad =
            || crate::exit::config(format!("--from {}: want generate:EVENTS[:SEED], e.g. generate:1000000:1", a.from));
        let mut parts = spec.splitn(2, ':').map(str::parse::<u64>);
        let events = parts.next().and_then(Result::ok).filter(|n| *n > 0).ok_or_else(bad)?;
        let seed = match parts.next() {
            Some(s) => s.map_err(|_| bad())?,
            None => 1,
        };
        let cfg = crate::generate::GenerateArgs::with(events, seed, 0.0, None, "").config()?;
        ecom_train::Input::from_generator(cfg, !a.quiet)?
    } else {
        ecom_train::Input::from_dir(&PathBuf::from(&a.from), !a.quiet)?
    };
    let threads =
        a.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1));
    let opts = ecom_train::TrainOptions {
        models_dir: a.models_dir,
        seed: a.seed,
        threads,
        lsh: LshParams { num_perm: a.lsh_perm, num_bands: a.lsh_bands },
        forest_trees: a.forest_trees,
        mlp_epochs: a.mlp_epochs,
        progress: !a.quiet,
        version: a.version_name,
        rows_out: a.rows_out,
    };
    if a.ablation {
        eprintln!("ecom train: {} XGBoost fits on one split", ecom_train::ablation::VARIANTS.len());
        let found = ecom_train::ablation::ablate(input, &opts, |r| {
            eprintln!("ecom train: {}: ROC AUC {:.4} ({:.1} s)", r.variant, r.roc_auc, r.seconds)
        })?;
        print!("{}", ecom_train::ablation::summary(&found));
        return Ok(());
    }
    let out = ecom_train::train(input, &opts)?;
    print!("{}", ecom_train::summary(&out));
    Ok(())
}

/// Sessions from what the pipeline stored: every event document in MongoDB `<db>.events` (the
/// job rejected the malformed records before the sink) with the product fields the job's
/// catalog join gave it, labelled by the truth read from its Kafka topic. Sessions the truth does not know are counted
/// and left out (no label, no oracle).
async fn load_mongodb(a: &TrainArgs) -> anyhow::Result<ecom_train::Input> {
    let truth: HashMap<String, SessionTruth> = read_topic(&a.kafka.brokers, &a.truth_topic)?
        .into_iter()
        .enumerate()
        .filter_map(|(i, b)| match TruthRecord::decode(b.as_slice()) {
            Ok(TruthRecord { record: Some(truth_record::Record::Session(s)) }) => Some(Ok(s)),
            Ok(_) => None,
            Err(e) => Some(Err(anyhow::anyhow!("{} record {i} is not a TruthRecord: {e}", a.truth_topic))),
        })
        .map(|s| {
            let s = s?;
            ecom_train::data::check_truth(&s).with_context(|| a.truth_topic.clone())?;
            Ok((s.session_id.clone(), s))
        })
        .collect::<anyhow::Result<_>>()?;
    if truth.is_empty() {
        bail!(
            "topic {} holds no session truth: training needs the generator's outcomes and oracle (ecom generate writes them)",
            a.truth_topic
        );
    }
    let mongo_url = a.mongo.url()?;
    let mut opts = mongodb::options::ClientOptions::parse(mongo_url.expose())
        .await
        .with_context(|| format!("bad MongoDB URL {mongo_url}"))?;
    opts.server_selection_timeout = Some(Duration::from_secs(10));
    opts.app_name = Some("ecom-train".into());
    let db = mongodb::Client::with_options(opts)?.database(&a.mongo_db);
    db.run_command(mongodb::bson::doc! {"ping": 1})
        .await
        .with_context(|| format!("MongoDB at {mongo_url} does not answer (run dev/up?)"))?;
    if a.mongo_read == MongoRead::Sessions {
        return load_stored_sessions(&db, &format!("{mongo_url}/{}", a.mongo_db), truth, !a.quiet).await;
    }
    let coll = db.collection::<mongodb::bson::Document>(ecom_sink::stores::EVENTS_COLLECTION);
    let total = coll.estimated_document_count().await.context("counting the stored events")?;
    let source = format!("{mongo_url}/{}.{}", a.mongo_db, ecom_sink::stores::EVENTS_COLLECTION);
    eprintln!("ecom train: reading {total} events from {source}, truth from {}", a.truth_topic);
    let bar = ecom_train::data::bar(!a.quiet, total, "reading events");
    let mut cursor = coll.find(mongodb::bson::doc! {}).batch_size(10_000).await.context("reading the stored events")?;
    let mut events: HashMap<String, SessionEvents> = HashMap::new();
    let mut stats = LoadStats::default();
    while cursor.advance().await.context("reading the stored events")? {
        let d = mongodb::bson::Bson::Document(cursor.deserialize_current()?).into_relaxed_extjson();
        let e = ecom_sink::doc::enriched_from_doc(&d)?;
        // Events of a session share a partition (keyed by session): the offset breaks time ties.
        let seq = d["source_offset"].as_i64().unwrap_or(0).max(0) as usize;
        ecom_train::data::add_event(&mut events, seq, e);
        stats.records += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let sessions = ecom_train::data::assemble(events, truth, &mut stats)?;
    if stats.without_truth > 0 {
        eprintln!(
            "ecom train: {} stored sessions have no truth in {} and are left out",
            stats.without_truth, a.truth_topic
        );
    }
    Ok(ecom_train::Input { source, sessions, stats })
}

/// Sessions the job closed (`<db>.sessions`), each with its state at the decision point, labelled
/// by the truth. A session the job stored as more than one record (split by a pause longer than
/// the session gap) is taken whole, as training from events takes it: its last part's decision
/// state, every part's purchases, its last event; it is counted. Sessions the truth does not
/// know are counted and left out.
async fn load_stored_sessions(
    db: &mongodb::Database,
    db_name: &str,
    mut truth: HashMap<String, SessionTruth>,
    progress: bool,
) -> anyhow::Result<ecom_train::Input> {
    let coll = db.collection::<mongodb::bson::Document>(ecom_sink::stores::SESSIONS_COLLECTION);
    let source = format!("{db_name}.{}", ecom_sink::stores::SESSIONS_COLLECTION);
    let total = coll.estimated_document_count().await.context("counting the stored sessions")?;
    eprintln!("ecom train: reading {total} sessions from {source}");
    let bar = ecom_train::data::bar(progress, total, "reading sessions");
    let mut stored: HashMap<String, Vec<ecom_sink::doc::StoredSession>> = HashMap::new();
    let mut cursor =
        coll.find(mongodb::bson::doc! {}).batch_size(10_000).await.context("reading the stored sessions")?;
    let mut stats = LoadStats { sessions: truth.len() as u64, ..Default::default() };
    while cursor.advance().await.context("reading the stored sessions")? {
        let d = mongodb::bson::Bson::Document(cursor.deserialize_current()?).into_relaxed_extjson();
        let s = ecom_sink::doc::session_from_doc(&d)?;
        stored.entry(s.session_id.clone()).or_default().push(s);
        stats.records += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut sessions = Vec::with_capacity(stored.len());
    for (id, mut parts) in stored {
        let Some(t) = truth.remove(&id) else {
            stats.without_truth += 1;
            continue;
        };
        stats.split_by_gap += u64::from(parts.len() > 1);
        parts.sort_by_key(|p| p.start_ms);
        let end_ms = parts.iter().map(|p| p.end_ms).max().unwrap_or(t.start_ms);
        let mut bought: Vec<String> = Vec::new();
        for p in parts.iter().flat_map(|p| &p.bought) {
            if !bought.contains(p) {
                bought.push(p.clone());
            }
        }
        let state =
            parts.into_iter().rev().find_map(|p| p.decision_state).unwrap_or_else(ecom_core::features::new_state);
        sessions.push(ecom_train::data::labelled(id, end_ms, state, bought, t, &mut stats));
    }
    stats.without_events = truth.len() as u64;
    ecom_train::data::sort_sessions(&mut sessions);
    if stats.without_truth > 0 {
        eprintln!("ecom train: {} stored sessions have no truth and are left out", stats.without_truth);
    }
    Ok(ecom_train::Input { source, sessions, stats })
}

/// Every record of a topic, from the beginning to the end it had when asked (all partitions).
pub(crate) fn read_topic(brokers: &str, topic: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let consumer: BaseConsumer = ecom_sink::kafka::client(brokers)?
        .set("group.id", "ecom-train")
        .set("enable.auto.commit", "false")
        .create()
        .with_context(|| format!("creating a Kafka consumer for {brokers}"))?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("Kafka at {brokers} does not answer (run dev/up?)"))?;
    let partitions: Vec<i32> = md.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    if partitions.is_empty() {
        bail!("Kafka topic {topic} does not exist at {brokers}");
    }
    let mut tpl = TopicPartitionList::new();
    let mut left = HashMap::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
            left.insert(p, high);
        }
    }
    consumer.assign(&tpl)?;
    let mut out = Vec::new();
    let mut last = Instant::now();
    while !left.is_empty() {
        match consumer.poll(Duration::from_millis(500)) {
            Some(m) => {
                let m = m.with_context(|| format!("reading {topic}"))?;
                if left.get(&m.partition()).is_some_and(|end| m.offset() < *end) {
                    out.push(m.payload().unwrap_or_default().to_vec());
                }
                if left.get(&m.partition()).is_some_and(|end| m.offset() + 1 >= *end) {
                    left.remove(&m.partition());
                }
                last = Instant::now();
            }
            // Past the end without a record at end - 1 (a transaction marker takes an offset).
            None => {
                for e in consumer.position()?.elements() {
                    if matches!(e.offset(), Offset::Offset(o) if left.get(&e.partition()).is_some_and(|end| o >= *end))
                    {
                        left.remove(&e.partition());
                    }
                }
                if !left.is_empty() && last.elapsed() > Duration::from_secs(60) {
                    bail!(
                        "reading {topic}: nothing for 60 s with partitions {:?} unfinished",
                        left.keys().collect::<Vec<_>>()
                    )
                }
            }
        }
    }
    Ok(out)
}
