//! Reading what a run produced: Elasticsearch counts, the output topics, and the search probe.
use super::*;

/// Documents in `index`, those written at or after `written_from_ms` when given.
pub(super) async fn es_count(
    es: &crate::stack::EsHttp,
    index: &str,
    written_from_ms: Option<i64>,
) -> anyhow::Result<u64> {
    let query = match written_from_ms {
        Some(t) => json!({"range": {"indexed_at": {"gte": t}}}),
        None => json!({"match_all": {}}),
    };
    es.count(index, query).await
}

/// What the bench's read_committed consumer saw.
pub(super) struct Outputs {
    pub(super) samples: Vec<Sample>,
    /// Probed event id → its index in `samples`.
    pub(super) sample_ids: Vec<(String, usize)>,
    pub(super) enriched: u64,
    pub(super) distinct: u64,
    pub(super) invalid: u64,
}

/// Reads the enriched and invalid topics (read_committed) until `total` records came out,
/// handing every `every`-th enriched event to the search probe.
pub(super) fn read_outputs(
    brokers: &str,
    topics: &[String; 2],
    total: u64,
    every: u64,
    probe: tokio::sync::mpsc::UnboundedSender<String>,
    stop: &AtomicBool,
) -> anyhow::Result<Outputs> {
    let consumer: BaseConsumer = ecom_sink::kafka::client(brokers)?
        .set("group.id", format!("{}-count", topics[0]))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()?;
    // Assigned, not subscribed: a new group's first join waits ~3 s, which would count as
    // latency of the first records.
    let md = consumer.fetch_metadata(None, Duration::from_secs(10)).context("reading Kafka metadata")?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for t in md.topics().iter().filter(|t| topics.iter().any(|x| x == t.name())) {
        for p in t.partitions() {
            tpl.add_partition_offset(t.name(), p.id(), rdkafka::Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    let mut ids = HashSet::new();
    let mut out = Outputs { samples: Vec::new(), sample_ids: Vec::new(), enriched: 0, distinct: 0, invalid: 0 };
    while out.enriched + out.invalid < total {
        if stop.load(Ordering::Relaxed) {
            bail!("stopped with {} of {total} records out of the job", out.enriched + out.invalid);
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else { continue };
        let msg = msg.context("reading the job's outputs")?;
        let visible = now_ms();
        if msg.topic() != topics[0] {
            out.invalid += 1;
            continue;
        }
        let e = EnrichedEvent::decode(msg.payload().unwrap_or_default())?;
        out.enriched += 1;
        let id = e.event.as_ref().map(|x| x.event_id.clone()).unwrap_or_default();
        if ids.insert(id.clone()) {
            out.distinct += 1;
        }
        if e.produced_at_ms <= 0 {
            continue;
        }
        let p = e.produced_at_ms;
        out.samples.push(Sample {
            produced: p,
            spans: [Some(e.ingested_at_ms - p), Some(e.enriched_at_ms - p), Some(visible - p), None, None],
        });
        if out.enriched.is_multiple_of(every) {
            out.sample_ids.push((id.clone(), out.samples.len() - 1));
            let _ = probe.send(id);
        }
    }
    Ok(out)
}

/// Asks Elasticsearch every 100 ms which of the probed events it can find (a search sees only
/// refreshed documents) until the reader is done and none is left, or 120 s pass without one
/// found. Gives (event id, the sink's write time, the time the search that found it returned).
pub(super) async fn probe_search(
    es: crate::stack::EsHttp,
    index: String,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> anyhow::Result<Vec<(String, i64, i64)>> {
    let mut pending: Vec<String> = Vec::new();
    let mut found = Vec::new();
    let mut open = true;
    let mut last_found = Instant::now();
    loop {
        while let Ok(p) = rx.try_recv() {
            pending.push(p);
        }
        if open && rx.is_closed() && rx.is_empty() {
            open = false;
        }
        if !open && pending.is_empty() {
            return Ok(found);
        }
        if last_found.elapsed() > Duration::from_secs(120) && !pending.is_empty() {
            eprintln!("warning: the search probe gave up on {} events not found for 120 s", pending.len());
            return Ok(found);
        }
        // Every pending id each round, 1,000 to a request, so none waits behind the others.
        let mut hits = std::collections::HashMap::new();
        let mut returned = now_ms();
        for chunk in pending.chunks(1_000) {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let r = es
                .client
                .post(format!("{}/{index}/_search?ignore_unavailable=true&allow_no_indices=true", es.base))
                .json(&json!({"size": ids.len(), "_source": ["indexed_at"], "query": {"ids": {"values": ids}}}))
                .send()
                .await;
            returned = now_ms();
            if let Ok(r) = r {
                let v: Value = r.json().await.unwrap_or(Value::Null);
                for h in v["hits"]["hits"].as_array().into_iter().flatten() {
                    if let (Some(id), Some(written)) = (h["_id"].as_str(), h["_source"]["indexed_at"].as_i64()) {
                        hits.insert(id.to_string(), written);
                    }
                }
            }
        }
        if !hits.is_empty() {
            last_found = Instant::now();
        }
        pending.retain(|id| match hits.get(id) {
            Some(&written) => {
                found.push((id.clone(), written, returned));
                false
            }
            None => true,
        });
        tokio::time::sleep(Duration::from_millis(PROBE_EVERY_MS)).await;
    }
}
