//! `ecom bench`: numbers, not assertions. `ecom bench generate` measures the generator
//! in-process and into Kafka, our tuned producer side by side with librdkafka's defaults;
//! `ecom bench serve` (bench_serve.rs) the gRPC services; `ecom bench job` (bench_job.rs) the
//! Flink job; `ecom bench dashboard` (bench_dash.rs) the live page's refresh at 1M events.
use anyhow::Context;
use ecom_gen::{GenConfig, Generator, Payload};
use prost::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::time::{Duration, Instant};

/// Arguments of `ecom bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Debug, clap::Subcommand)]
enum BenchWhat {
    /// Events/s of the generator: in-process, then into Kafka (tuned vs default producer).
    Generate(GenerateBench),
    /// The sink's MongoDB write path next to the first version's (one multi-statement
    /// upsert `update` command per batch), on a scratch database.
    Sink(SinkBench),
    /// MinHash accuracy: our Jaccard estimates next to Python datasketch's on the same pairs
    /// (made by dev/bench-lsh-accuracy).
    Lsh(LshBench),
    /// `ecom serve` per method at fixed rates over loopback (p50/p99/p99.9, highest
    /// sustainable rate), single and batched, and the in-process cost of score + SHAP.
    Serve(crate::bench_serve::ServeBench),
    /// The Flink job on the local cluster, Kafka → job (JNI + gRPC) → Kafka: throughput at
    /// each parallelism next to unbatched serve calls, and latency at a fixed rate.
    Job(crate::bench_job::JobBench),
    /// The whole pipeline, generator to searchable documents in both stores: per-stage latency
    /// on a ladder of fixed rates and at full speed, CPU and memory per process, the stores
    /// reconciled afterwards (bench_e2e.rs).
    E2e(crate::bench_e2e::E2eBench),
    /// The live dashboard's refresh (every panel at once) over the sink's indices next to
    /// copies of them grown to --events enriched events (default 1M).
    Dashboard(crate::bench_dash::DashBench),
}

#[derive(Debug, clap::Args)]
struct LshBench {
    /// JSON lines: {"a": [tokens], "b": [tokens], "true": J, "datasketch": {"32": est, "128": est}}.
    #[arg(long)]
    pairs: std::path::PathBuf,
}

#[derive(Debug, clap::Args)]
struct SinkBench {
    /// Documents written per strategy (in batches of --batch).
    #[arg(long, default_value_t = 3_000)]
    docs: usize,
    /// Documents per batch.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    #[command(flatten)]
    mongo: crate::stack::MongoArgs,
    /// Elasticsearch (the sink connects to both stores; only MongoDB is measured).
    #[command(flatten)]
    es: crate::stack::EsArgs,
}

#[derive(Debug, clap::Args)]
struct GenerateBench {
    /// Records per measurement.
    #[arg(long, default_value_t = 500_000)]
    events: u64,
    #[command(flatten)]
    kafka: crate::stack::KafkaArgs,
    /// Only measure in-process.
    #[arg(long)]
    no_kafka: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(a: BenchArgs) -> anyhow::Result<()> {
    match a.what {
        BenchWhat::Generate(g) => generate(g).await,
        BenchWhat::Sink(b) => sink(b).await,
        BenchWhat::Lsh(b) => lsh_accuracy(b),
        BenchWhat::Serve(b) => crate::bench_serve::run(b).await,
        BenchWhat::Job(b) => crate::bench_job::run(b).await,
        BenchWhat::E2e(b) => crate::bench_e2e::run(b).await,
        BenchWhat::Dashboard(b) => crate::bench_dash::run(b).await,
    }
}

/// The value at quantile `q` of sorted values (the one at index ⌊n·q⌋); None when there are none.
pub(crate) fn pct(v: &[i64], q: f64) -> Option<i64> {
    (!v.is_empty()).then(|| v[((v.len() as f64 * q) as usize).min(v.len() - 1)])
}

/// Prints CPU ms per 1,000 records: a header of the processes' names, then per row its label,
/// each process's ms and the total, from (label, records, CPU seconds per process).
pub(crate) fn print_cpu_per_k<'a>(
    first: &str,
    width: usize,
    rows: impl IntoIterator<Item = (&'a str, u64, &'a [(&'static str, f64)])>,
) {
    for (i, (label, records, cpu)) in rows.into_iter().enumerate() {
        if i == 0 {
            let names: String = cpu.iter().map(|(n, _)| format!("{n:>10}")).collect();
            println!("{first:<width$} {names}  {:>8}", "total");
        }
        let per_k = |s: f64| s * 1000.0 / (records.max(1) as f64 / 1000.0);
        let cells: String = cpu.iter().map(|(_, s)| format!("{:>10.0}", per_k(*s))).collect();
        let total: f64 = cpu.iter().map(|(_, s)| per_k(*s)).sum();
        println!("{label:<width$} {cells}  {total:>8.0}");
    }
}

fn values(events: u64) -> (Vec<(String, Vec<u8>)>, f64, f64) {
    let cfg = GenConfig { events, seed: 1, ..Default::default() };
    let t = Instant::now();
    let n = Generator::new(cfg.clone()).count();
    let gen_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let out: Vec<(String, Vec<u8>)> = Generator::new(cfg)
        .map(|r| {
            let v = match r.payload {
                Payload::Event(e) => e.encode_to_vec(),
                Payload::Bytes(b) => b,
            };
            (r.key, v)
        })
        .collect();
    debug_assert_eq!(n, out.len());
    (out, gen_s, t.elapsed().as_secs_f64())
}

async fn produce(
    brokers: &str,
    topic: &str,
    settings: &[(&str, &str)],
    records: &[(String, Vec<u8>)],
) -> anyhow::Result<f64> {
    let mut cfg = ecom_sink::kafka::client(brokers)?;
    cfg.set("queue.buffering.max.messages", "1000000");
    for (k, v) in settings {
        cfg.set(*k, *v);
    }
    let producer: FutureProducer = cfg.create().context("creating the bench producer")?;
    let t = Instant::now();
    let mut inflight = Vec::with_capacity(records.len());
    for (k, v) in records {
        let mut rec = FutureRecord::to(topic).key(k.as_bytes()).payload(v);
        loop {
            match producer.send_result(rec) {
                Ok(f) => {
                    inflight.push(f);
                    break;
                }
                Err((_, r)) => {
                    rec = r;
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
    }
    for f in inflight {
        f.await.context("delivery report dropped")?.map_err(|(e, _)| e).context("delivery failed")?;
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(t.elapsed().as_secs_f64())
}

async fn generate(a: GenerateBench) -> anyhow::Result<()> {
    let (records, gen_s, enc_s) = values(a.events);
    let n = records.len() as f64;
    let mut rows = vec![("generate (in-process)", n / gen_s), ("generate + encode (in-process)", n / enc_s)];
    if !a.no_kafka {
        let topic = "ecom.bench.raw";
        let admin: AdminClient<DefaultClientContext> =
            ecom_sink::kafka::client(&a.kafka.brokers)?.create().context("creating a Kafka admin client")?;
        let _ = admin.create_topics(&[NewTopic::new(topic, 2, TopicReplication::Fixed(1))], &AdminOptions::new()).await;
        let idempotent =
            [("enable.idempotence", "true"), ("acks", "all"), ("linger.ms", "10"), ("batch.size", "262144")];
        let with_lz4 = [idempotent.as_slice(), &[("compression.type", "lz4")]].concat();
        // Warm-up: the first producer after a broker start waits for its coordinator.
        produce(&a.kafka.brokers, topic, &idempotent, &records[..records.len().min(10_000)]).await?;
        let default_s = produce(&a.kafka.brokers, topic, &[], &records).await?;
        let idem_s = produce(&a.kafka.brokers, topic, &idempotent, &records).await?;
        let lz4_s = produce(&a.kafka.brokers, topic, &with_lz4, &records).await?;
        rows.push(("into Kafka, librdkafka defaults (baseline, not idempotent)", n / default_s));
        rows.push(("into Kafka, idempotent + acks=all, linger 10 ms, 256 KiB batches", n / idem_s));
        rows.push(("into Kafka, the same plus lz4 (ecom generate's producer settings)", n / lz4_s));
        // The real command: generating and producing on two threads, truth and catalog too.
        let mut g = crate::generate::GenerateArgs::with(a.events, 1, 0.02, None, &a.kafka.brokers);
        (g.topic, g.catalog_topic, g.truth_topic, g.quiet) = (topic.into(), topic.into(), topic.into(), true);
        let s = crate::generate::generate(g).await?;
        rows.push((
            "ecom generate end to end (generate | produce threads, + truth, catalog)",
            s.produced as f64 / s.seconds,
        ));
    }
    if a.json {
        let obj: serde_json::Map<String, serde_json::Value> =
            rows.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v.round()))).collect();
        println!("{}", serde_json::Value::Object(obj));
    } else {
        println!("ecom bench generate: {} records each", records.len());
        for (what, rate) in rows {
            println!("  {what:<72} {rate:>12.0} events/s");
        }
    }
    Ok(())
}

fn bench_event(i: usize) -> ecom_proto::v1::EnrichedEvent {
    ecom_proto::v1::EnrichedEvent {
        event: Some(ecom_proto::v1::Event {
            event_id: format!("bench-{i:08}"),
            event_time_ms: 1_767_225_600_000 + i as i64,
            session_id: format!("s{}", i / 10),
            user_id: format!("u{}", i / 30),
            kind: 3,
            product_id: Some(format!("P{:05}", i % 2_400)),
            page: "/p/P00001".into(),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0"
                .into(),
            ..Default::default()
        }),
        ip_hash: "3f2a".repeat(16),
        verdict: 1,
        lsh_buckets: (0..8).map(|b| b * 0x9e37_79b9_7f4a_7c15_u64).collect(),
        ..Default::default()
    }
}

/// Longest the baseline's replay may run before the bench reports it as timed out.
const REPLAY_LIMIT: Duration = Duration::from_secs(60);

async fn sink(b: SinkBench) -> anyhow::Result<()> {
    use mongodb::bson::{doc, Bson, Document};
    let db_name = format!("ecom_bench_sink_{}", std::process::id());
    let cfg = ecom_sink::SinkConfig {
        es_url: b.es.url()?,
        index_prefix: format!("ecom-bench-{}", std::process::id()),
        mongo_url: b.mongo.url()?,
        mongo_db: db_name.clone(),
        ..Default::default()
    };
    let stores = ecom_sink::stores::Stores::connect(&cfg).await?;
    let client = mongodb::Client::with_uri_str(cfg.mongo_url.expose()).await?;
    let db = client.database(&db_name);
    let events: Vec<_> = (0..b.docs).map(bench_event).collect();
    let batches: Vec<&[ecom_proto::v1::EnrichedEvent]> = events.chunks(b.batch.max(1)).collect();

    // Baseline: the first version's one `update` command with an upsert statement per document.
    let baseline = |batch: &[ecom_proto::v1::EnrichedEvent]| {
        let updates: Vec<Bson> = batch
            .iter()
            .map(|e| {
                let id = e.event.as_ref().map(|x| x.event_id.clone()).unwrap_or_default();
                let mut u: Document = mongodb::bson::to_document(&ecom_sink::doc::to_doc(e, 0)).expect("plain JSON");
                u.insert("_id", id.clone());
                Bson::Document(doc! {"q": {"_id": id}, "u": u, "upsert": true})
            })
            .collect();
        let db = db.clone();
        async move { db.run_command(doc! {"update": "events_baseline", "updates": updates, "ordered": false}).await }
    };
    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    let mut time_all =
        |name: &str, secs: Vec<f64>| rows.push((name.to_string(), secs[0], *secs.last().unwrap_or(&0.0)));

    let mut base_s = Vec::new();
    for batch in &batches {
        let t = Instant::now();
        baseline(batch).await.context("baseline update command")?;
        base_s.push(t.elapsed().as_secs_f64());
        eprintln!("  baseline batch {} of {}: {:.3} s", base_s.len(), batches.len(), base_s[base_s.len() - 1]);
    }
    time_all("update command, one upsert statement per document (first version)", base_s);
    let mut cur_s = Vec::new();
    for batch in &batches {
        let t = Instant::now();
        stores.write_mongo_only(batch).await?;
        cur_s.push(t.elapsed().as_secs_f64());
        eprintln!("  current batch {} of {}: {:.3} s", cur_s.len(), batches.len(), cur_s[cur_s.len() - 1]);
    }
    time_all("insert_many unordered (current, new documents)", cur_s);
    // Replays: the last batch again, so every document already exists.
    let last = batches.last().copied().unwrap_or_default();
    let t = Instant::now();
    stores.write_mongo_only(last).await?;
    let cur_replay = t.elapsed().as_secs_f64();
    // Last and bounded: on FerretDB/SQLite the first version's replay can take many minutes,
    // and a command the bench gives up on keeps running on the server.
    let t = Instant::now();
    let base_replay = match tokio::time::timeout(REPLAY_LIMIT, baseline(last)).await {
        Ok(r) => {
            r.context("baseline replay")?;
            format!("{:.3}", t.elapsed().as_secs_f64())
        }
        Err(_) => format!("> {}", REPLAY_LIMIT.as_secs()),
    };
    eprintln!("  replays: baseline {base_replay} s, current {cur_replay:.3} s");

    println!("ecom bench sink: {} documents in batches of {} into {db_name}", b.docs, b.batch);
    println!("  {:<70} {:>12} {:>12}", "strategy", "1st batch s", "last batch s");
    for (name, first, last) in &rows {
        println!("  {name:<70} {first:>12.3} {last:>12.3}");
    }
    println!(
        "  replay of the last batch (every document exists): first version {base_replay} s, current {cur_replay:.3} s"
    );
    match tokio::time::timeout(Duration::from_secs(30), db.drop()).await {
        Ok(r) => r.context("dropping the bench database")?,
        Err(_) => eprintln!("the server is still busy; drop the database {db_name} later"),
    }
    Ok(())
}

fn lsh_accuracy(b: LshBench) -> anyhow::Result<()> {
    use ecom_core::lsh::{Lsh, LshParams};
    let text = std::fs::read_to_string(&b.pairs).with_context(|| format!("reading {}", b.pairs.display()))?;
    let mut rows: Vec<(Vec<String>, Vec<String>, f64, serde_json::Value)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("line {}", i + 1))?;
        let tokens = |k: &str| -> anyhow::Result<Vec<String>> {
            v[k].as_array()
                .with_context(|| format!("line {}: {k} is not a list", i + 1))?
                .iter()
                .map(|t| {
                    t.as_str().map(str::to_string).with_context(|| format!("line {}: a token is not a string", i + 1))
                })
                .collect()
        };
        let truth = v["true"].as_f64().with_context(|| format!("line {}: no true Jaccard", i + 1))?;
        rows.push((tokens("a")?, tokens("b")?, truth, v["datasketch"].clone()));
    }
    anyhow::ensure!(!rows.is_empty(), "{} holds no pairs", b.pairs.display());
    println!("ecom bench lsh: {} set pairs, Jaccard estimate error against the true Jaccard", rows.len());
    println!("  {:<44} {:>10} {:>10} {:>10}", "estimator", "mean |err|", "RMSE", "max |err|");
    for (perm, bands) in [(32usize, 8usize), (128, 16)] {
        let lsh = Lsh::new(LshParams { num_perm: perm, num_bands: bands })?;
        let mut ours = Vec::with_capacity(rows.len());
        let mut theirs = Vec::with_capacity(rows.len());
        for (a, bb, truth, ds) in &rows {
            let est = Lsh::similarity(&lsh.signature(a), &lsh.signature(bb));
            ours.push(est - truth);
            if let Some(d) = ds[perm.to_string()].as_f64() {
                theirs.push(d - truth);
            }
        }
        for (name, errs) in [
            (format!("ecom (gaoya), {perm} permutations"), &ours),
            (format!("datasketch, {perm} permutations"), &theirs),
        ] {
            if errs.is_empty() {
                continue;
            }
            let n = errs.len() as f64;
            let mae = errs.iter().map(|e| e.abs()).sum::<f64>() / n;
            let rmse = (errs.iter().map(|e| e * e).sum::<f64>() / n).sqrt();
            let max = errs.iter().fold(0.0f64, |m, e| m.max(e.abs()));
            println!("  {name:<44} {mae:>10.4} {rmse:>10.4} {max:>10.4}");
        }
    }
    Ok(())
}
