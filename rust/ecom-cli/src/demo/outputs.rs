//! What a run produced, counted where it landed: the output topics read back record by record
//! (and matched to the generator's labels), and the stores counted by id.
use super::*;

/// p50 and p99 of produced → indexed by the sink (the documents' `latency_ms`: the sink's
/// clock as it builds the write) over the events produced since `from_ms`; Elasticsearch's
/// percentiles are estimates (t-digest).
pub(super) async fn indexed_latency(es: &EsHttp, from_ms: i64) -> Option<(i64, i64)> {
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

/// What the job's output topics held of a run, record by record (the summary's counts; the ids
/// and stage latencies stay out of its JSON).
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct Outcome {
    #[serde(skip)]
    pub(crate) enriched_ids: Vec<String>,
    pub(crate) invalid: usize,
    /// The sink's document id of each of this run's dead letters (its raw record's position).
    #[serde(skip)]
    pub(crate) invalid_ids: Vec<String>,
    pub(crate) invalid_by_reason: BTreeMap<String, u64>,
    #[serde(rename = "guard_verdicts")]
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
    #[serde(skip)]
    pub(crate) latency_ms: Vec<(&'static str, (i64, i64))>,
    /// The latest `enriched_at_ms` of an event that got a Guard, Score or Recommend fallback.
    #[serde(skip)]
    pub(crate) last_fallback_at_ms: i64,
    /// Each closed session's score at its decision point and its outcome, for the live model
    /// quality.
    #[serde(skip)]
    pub(crate) decision_scores: Vec<DecisionScore>,
    /// The job's live quality records (ecom.quality) of the run.
    pub(crate) quality_windows: u64,
    #[serde(skip)]
    pub(crate) quality: Vec<ModelQuality>,
}

/// A closed session's score at its decision point: what the live quality is made of.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DecisionScore {
    pub(crate) model_version: String,
    /// A shadow version's score at the same moment, not the answer.
    pub(crate) shadow: bool,
    pub(crate) probability: f64,
    pub(crate) purchased: bool,
    /// The event the score was given to (Session.decision_event_id).
    pub(crate) event_id: String,
    /// Its close in event time (last event + the session gap): the quality window it counts in.
    pub(crate) close_ms: i64,
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
        if let Some(p) = crate::bench::pct(&v, 0.5).zip(crate::bench::pct(&v, 0.99)) {
            out.latency_ms.push((stage, p));
        }
    }
    Ok(out)
}

/// Counts a record of ecom.sessions, ecom.metrics or ecom.quality; false for the other topics.
pub(super) fn count_derived(out: &mut Outcome, topic: &str, payload: &[u8]) -> anyhow::Result<bool> {
    match topic {
        SESSIONS => {
            let s = Session::decode(payload).context("an ecom.sessions record is not a Session")?;
            out.sessions += 1;
            out.session_events += u64::from(s.events);
            out.sessions_purchased += u64::from(s.purchased);
            out.sessions_unknown_user += u64::from(s.session_id.is_empty() || s.user_id.is_empty());
            let close_ms = s.end_ms + ecom_core::stream::SESSION_GAP_MS;
            if let Some(p) = s.purchase_probability {
                out.decision_scores.push(DecisionScore {
                    model_version: s.model_version,
                    shadow: false,
                    event_id: s.decision_event_id.clone(),
                    probability: p,
                    purchased: s.purchased,
                    close_ms,
                });
            }
            if let Some(p) = s.shadow_probability {
                out.decision_scores.push(DecisionScore {
                    model_version: s.shadow_model_version,
                    shadow: true,
                    event_id: s.decision_event_id,
                    probability: p,
                    purchased: s.purchased,
                    close_ms,
                });
            }
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
        QUALITY => {
            let q = ModelQuality::decode(payload).context("an ecom.quality record is not a ModelQuality")?;
            out.quality_windows += 1;
            out.quality.push(q);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

pub(super) fn fmt_epsilons(e: &BTreeMap<String, u64>) -> String {
    if e.is_empty() {
        return "none yet".into();
    }
    e.iter().map(|(eps, n)| format!("{eps} on {n}")).collect::<Vec<_>>().join(", ")
}

pub(super) fn src_in_run(src: &ecom_proto::v1::SourceOffset, gen: &GenerateSummary) -> bool {
    src.topic == RAW && gen.positions.contains_key(&(src.partition, src.offset))
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
pub(super) async fn count_ids(
    es: &EsHttp,
    index: &str,
    coll: &mongodb::Collection<mongodb::bson::Document>,
    ids: &[String],
) -> anyhow::Result<(u64, u64)> {
    let _ = es.client.post(format!("{}/{index}/_refresh", es.base)).send().await;
    let (mut in_es, mut mg) = (0, 0);
    for chunk in ids.chunks(5_000) {
        in_es += es.count(index, json!({"ids": {"values": chunk}})).await?;
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
        let (es_events, mongo_events) = count_ids(&es, "ecom-events-*", &events, &outcome.enriched_ids).await?;
        let (es_dead_letters, mongo_dead_letters) =
            count_ids(&es, "ecom-invalid-*", &invalid, &outcome.invalid_ids).await?;
        let mut c = StoreCounts { es_events, mongo_events, es_dead_letters, mongo_dead_letters, ..Default::default() };
        let (n, m) = (outcome.enriched_ids.len() as u64, outcome.invalid_ids.len() as u64);
        let all_in = es_events == n && mongo_events == n && es_dead_letters == m && mongo_dead_letters == m;
        if all_in || Instant::now() > deadline {
            if totals {
                c.es_events_total = es.count("ecom-events-*", json!({"match_all": {}})).await?;
                c.mongo_events_total =
                    events.count_documents(mongodb::bson::doc! {}).await.context("counting MongoDB documents")?;
            }
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
