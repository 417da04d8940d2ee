//! `ecom train`: purchase models (see ecom-train) from the generator's files or from what the
//! pipeline stored: the sink's events in MongoDB, with the truth and the catalog from Kafka.
use anyhow::{bail, Context};
use ecom_core::lsh::LshParams;
use ecom_proto::v1::{truth_record, Product, SessionTruth, TruthRecord};
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
    /// Where sessions come from: a directory written by `ecom generate --out DIR`, or `mongodb`
    /// for the events the sink stored (MongoDB <db>.events) with the generator's truth and the
    /// catalog read from Kafka.
    #[arg(long)]
    from: String,
    /// MongoDB of `--from mongodb`.
    #[command(flatten)]
    mongo: crate::stack::MongoArgs,
    /// Database of `--from mongodb` (the sink's --mongo-db).
    #[arg(long, default_value = "ecom")]
    mongo_db: String,
    #[command(flatten)]
    kafka: crate::stack::KafkaArgs,
    /// The generator's truth topic (labels and the oracle) for `--from mongodb`.
    #[arg(long, default_value = ecom_core::topics::TRUTH)]
    truth_topic: String,
    /// The catalog topic (the product join) for `--from mongodb`.
    #[arg(long, default_value = ecom_core::topics::CATALOG)]
    catalog_topic: String,
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
}

pub(crate) fn run(a: TrainArgs) -> anyhow::Result<()> {
    let input = if a.from == "mongodb" {
        tokio::runtime::Handle::current().block_on(load_mongodb(&a))?
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
    };
    let out = ecom_train::train(input, &opts)?;
    print!("{}", ecom_train::summary(&out));
    Ok(())
}

/// Sessions from what the pipeline stored: every event document in MongoDB `<db>.events` (the
/// job rejected the malformed records before the sink), joined to the catalog and labelled by
/// the truth, both read from their Kafka topics. Sessions the truth does not know are counted
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
    let catalog: HashMap<String, Product> = read_topic(&a.kafka.brokers, &a.catalog_topic)?
        .iter()
        .map(|b| Product::decode(b.as_slice()).map(|p| (p.product_id.clone(), p)))
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} holds a record that is not a Product", a.catalog_topic))?;

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
    let coll = db.collection::<mongodb::bson::Document>(ecom_sink::stores::EVENTS_COLLECTION);
    let total = coll.estimated_document_count().await.context("counting the stored events")?;
    let source = format!("{mongo_url}/{}.{}", a.mongo_db, ecom_sink::stores::EVENTS_COLLECTION);
    eprintln!(
        "ecom train: reading {total} events from {source}, truth from {}, catalog from {}",
        a.truth_topic, a.catalog_topic
    );
    let bar = ecom_train::data::bar(!a.quiet, total, "reading events");
    let mut cursor = coll.find(mongodb::bson::doc! {}).batch_size(10_000).await.context("reading the stored events")?;
    let mut events: HashMap<String, SessionEvents> = HashMap::new();
    let mut stats = LoadStats::default();
    while cursor.advance().await.context("reading the stored events")? {
        let d = mongodb::bson::Bson::Document(cursor.deserialize_current()?).into_relaxed_extjson();
        let e = ecom_sink::doc::event_from_doc(&d)?;
        // Events of a session share a partition (keyed by session): the offset breaks time ties.
        let seq = d["source_offset"].as_i64().unwrap_or(0).max(0) as usize;
        ecom_train::data::add_event(&mut events, seq, e);
        stats.records += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let sessions = ecom_train::data::assemble(events, truth, &catalog, &mut stats)?;
    if stats.without_truth > 0 {
        eprintln!(
            "ecom train: {} stored sessions have no truth in {} and are left out",
            stats.without_truth, a.truth_topic
        );
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
