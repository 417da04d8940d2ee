//! `ecom replay`: dead letters sent again once their cause is fixed. The sink's (documents a
//! store refused, MongoDB `sink_deadletter`) go back to the index or collection that refused
//! them; the job's (records it rejected, MongoDB `invalid` as the sink stored them) go back to
//! the raw topic to be judged again. Each letter is marked `replayed_at_ms` and replayed once;
//! stores key by record id, so a record replayed twice is still stored once.
use anyhow::{bail, Context};
use ecom_core::now_ms;
use mongodb::bson::{doc, Document};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

/// Arguments of `ecom replay`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// The sink's dead letters: documents Elasticsearch or MongoDB refused for good, to the
    /// index or collection that refused them, under the record's id.
    Sink(SinkReplay),
    /// The job's dead letters (ecom.events.invalid, as the sink stored them in MongoDB
    /// `invalid`): each record's raw bytes back to the raw topic, with the header
    /// `ecom-replay-of: <topic>/<partition>/<offset>`, to be validated again.
    Job(JobReplay),
}

/// Which letters, shared by both kinds.
#[derive(Debug, clap::Args)]
struct Choose {
    /// Only the letters whose reason contains this (the store's reason, e.g.
    /// index_closed_exception; the job's reason code, e.g. MISSING_FIELD).
    #[arg(long)]
    reason: Option<String>,
    /// Only the letters written (sink) or rejected (job) at or after this time, ms since epoch.
    #[arg(long)]
    since_ms: Option<i64>,
    /// Only the letters written (sink) or rejected (job) at or before this time, ms since epoch.
    #[arg(long)]
    until_ms: Option<i64>,
    /// Count the letters that would be replayed; write nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    mongo: crate::stack::MongoArgs,
    /// MongoDB database of the sink.
    #[arg(long, default_value = "ecom")]
    mongo_db: String,
}

#[derive(Debug, clap::Args)]
struct SinkReplay {
    /// Only the letters of this store ("elasticsearch" or "mongodb").
    #[arg(long)]
    store: Option<String>,
    #[command(flatten)]
    es: crate::stack::EsArgs,
    #[command(flatten)]
    choose: Choose,
}

#[derive(Debug, clap::Args)]
struct JobReplay {
    #[command(flatten)]
    kafka: crate::stack::KafkaArgs,
    /// The raw topic the job reads (its --raw-topic).
    #[arg(long = "raw-topic", visible_alias = "topic", default_value = ecom_core::topics::RAW)]
    topic: String,
    #[command(flatten)]
    choose: Choose,
}

pub(crate) async fn run(a: ReplayArgs) -> anyhow::Result<()> {
    match a.what {
        What::Sink(s) => sink(s).await,
        What::Job(j) => job(j).await,
    }
}

async fn sink(a: SinkReplay) -> anyhow::Result<()> {
    let c = &a.choose;
    let stores = ecom_sink::stores::Stores::at(&a.es.url()?, &c.mongo.url()?, &c.mongo_db, "ecom").await?;
    stores.ping().await?;
    let f = ecom_sink::stores::ReplayFilter {
        store: a.store,
        reason: c.reason.clone(),
        since_ms: c.since_ms,
        until_ms: c.until_ms,
        dry_run: c.dry_run,
    };
    let r = stores.replay(&f).await?;
    if c.dry_run {
        println!("{} sink dead letters would be replayed (dry run: nothing written)", r.matched);
    } else {
        println!("{} sink dead letters chosen: {} replayed, {} refused again", r.matched, r.replayed, r.refused);
        if let Some(why) = r.first_refusal {
            println!("first refusal: {why} (those letters stay pending, with replay_reason)");
        }
    }
    Ok(())
}

/// What `ecom replay job` did: `chosen = replayed + truncated`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct JobReplayed {
    pub(crate) chosen: u64,
    pub(crate) replayed: u64,
    /// Letters that keep only a prefix of their record (over the record limit): the whole
    /// record is still at its source position in the raw topic while Kafka keeps it.
    pub(crate) truncated: u64,
}

async fn job(a: JobReplay) -> anyhow::Result<()> {
    let c = &a.choose;
    let r = replay_job(&a.kafka.brokers, &a.topic, &c.mongo.url()?, &c.mongo_db, c).await?;
    let (verb, dry) = if c.dry_run { ("would be replayed", " (dry run: nothing written)") } else { ("replayed", "") };
    println!(
        "{} job dead letters chosen: {} {verb} to {}{dry}, {} not replayable (truncated: the whole record is at its source position)",
        r.chosen, r.replayed, a.topic, r.truncated
    );
    Ok(())
}

async fn replay_job(
    brokers: &str,
    topic: &str,
    mongo_url: &ecom_core::secret::SecretUrl,
    mongo_db: &str,
    c: &Choose,
) -> anyhow::Result<JobReplayed> {
    use base64::Engine as _;
    let client =
        mongodb::Client::with_uri_str(mongo_url.expose()).await.with_context(|| format!("MongoDB at {mongo_url}"))?;
    let coll = client.database(mongo_db).collection::<Document>(ecom_sink::stores::INVALID_COLLECTION);
    let mut q = doc! {"replayed_at_ms": {"$exists": false}};
    ecom_sink::stores::add_ms_range(&mut q, "rejected_at", c.since_ms, c.until_ms);
    let mut cursor = coll.find(q).await.context("reading the job's dead letters in MongoDB")?;
    let mut letters = Vec::new();
    while cursor.advance().await.context("reading the job's dead letters in MongoDB")? {
        let d = cursor.deserialize_current().context("decoding a job dead letter")?;
        if c.reason.as_ref().is_none_or(|r| d.get_str("reason").unwrap_or_default().contains(r.as_str())) {
            letters.push(d);
        }
    }
    let mut out = JobReplayed { chosen: letters.len() as u64, ..Default::default() };
    let producer: FutureProducer = ecom_sink::kafka::client(brokers)?
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000")
        .create()
        .with_context(|| format!("creating a Kafka producer for {brokers}"))?;
    for d in &letters {
        if d.get_bool("raw_truncated").unwrap_or(false) {
            out.truncated += 1;
            continue;
        }
        if c.dry_run {
            out.replayed += 1;
            continue;
        }
        let id = d.get_str("_id").unwrap_or_default().to_string();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(d.get_str("raw").unwrap_or_default())
            .with_context(|| format!("job dead letter {id}: raw is not base64"))?;
        let headers = OwnedHeaders::new().insert(Header { key: "ecom-replay-of", value: Some(id.as_str()) });
        producer
            .send(FutureRecord::<(), [u8]>::to(topic).payload(&raw).headers(headers), Duration::from_secs(60))
            .await
            .map_err(|(e, _)| e)
            .with_context(|| format!("producing the replay of {id} to {topic}"))?;
        // Marked after Kafka acknowledged it: a replay cut short here sends it again next
        // time, and the job's duplicate check and the id-keyed stores keep it stored once.
        coll.update_one(doc! {"_id": &id}, doc! {"$set": {"replayed_at_ms": now_ms()}})
            .await
            .with_context(|| format!("marking {id} replayed"))?;
        out.replayed += 1;
    }
    if out.replayed + out.truncated != out.chosen {
        bail!("replay counts do not add up: {out:?}");
    }
    Ok(out)
}
