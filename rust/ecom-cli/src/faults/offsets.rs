//! When a run has caught up, told by Kafka's offsets: the job's and the sink's consumer groups
//! committed past where the input and the outputs ended.
use super::*;

/// Waits until everything produced to ecom.events.raw before `back` is in both stores: the
/// job's checkpoints committed its raw offsets past that point, then the sink committed its
/// offsets past where the job's outputs ended at that moment. None after `limit`.
pub(super) fn caught_up(brokers: &str, back: Instant, limit: Duration) -> Option<Duration> {
    let deadline = back + limit;
    let raw_end = ends(brokers, &[RAW]).ok()?;
    wait_committed(brokers, "ecom-flink", &raw_end, deadline)?;
    let out_end = after_last_records(brokers, &[ENRICHED, INVALID]).ok()?;
    wait_committed(brokers, "ecom-sink", &out_end, deadline)?;
    Some(back.elapsed())
}

/// Per partition of `topics`, the offset after its last committed record: what a consumer that
/// has read everything commits. The job writes in transactions, so a partition usually ends
/// in commit markers (one or more), which no read_committed consumer reads or commits past.
fn after_last_records(brokers: &str, topics: &[&str]) -> anyhow::Result<TopicPartitionList> {
    use rdkafka::Message as _;
    let mut out = TopicPartitionList::new();
    // One consumer per topic: an end-of-partition report names the partition, not the topic.
    for topic in topics {
        let c: BaseConsumer<EofIsNoError> = ecom_sink::kafka::client(brokers)?
            .set("group.id", "ecom-faults-probe")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .create_with_context(EofIsNoError)?;
        // The last 500 offsets of a partition hold data records between the markers.
        let mut from = TopicPartitionList::new();
        for e in ends(brokers, &[topic])?.elements() {
            let end = e.offset().to_raw().unwrap_or(0);
            if end > 0 {
                from.add_partition_offset(topic, e.partition(), Offset::Offset((end - 500).max(0)))?;
            }
        }
        c.assign(&from)?;
        let mut last: HashMap<i32, i64> = HashMap::new();
        let mut at_end = std::collections::HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while at_end.len() < from.count() {
            if Instant::now() > deadline {
                bail!("reading the end of {topic} took over 30 s");
            }
            match c.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let e = last.entry(m.partition()).or_insert(-1);
                    *e = (*e).max(m.offset());
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                Some(Err(e)) => return Err(e.into()),
                None => {}
            }
        }
        for (p, o) in last {
            out.add_partition_offset(topic, p, Offset::Offset(o + 1))?;
        }
    }
    Ok(out)
}

/// A consumer context that does not log the end of a partition (which the probe asks for) as
/// an error, as rdkafka's default context does.
struct EofIsNoError;

impl rdkafka::ClientContext for EofIsNoError {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        if !matches!(error, KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
            tracing::error!("librdkafka: {error}: {reason}");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EofIsNoError {}

fn ends(brokers: &str, topics: &[&str]) -> anyhow::Result<TopicPartitionList> {
    let c: BaseConsumer = ecom_sink::kafka::client(brokers)?.create()?;
    let md = c.fetch_metadata(None, Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics().iter().filter(|t| topics.contains(&t.name())) {
        for p in t.partitions() {
            let (_, high) = c.fetch_watermarks(t.name(), p.id(), Duration::from_secs(10))?;
            tpl.add_partition_offset(t.name(), p.id(), Offset::Offset(high))?;
        }
    }
    Ok(tpl)
}

/// Polls `group`'s committed offsets until each partition is at or past `target`.
fn wait_committed(brokers: &str, group: &str, target: &TopicPartitionList, deadline: Instant) -> Option<()> {
    let c: BaseConsumer = ecom_sink::kafka::client(brokers)
        .ok()?
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .ok()?;
    while Instant::now() < deadline {
        if let Ok(committed) = c.committed_offsets(target.clone(), Duration::from_secs(5)) {
            let done = target.elements().iter().all(|want| {
                let Offset::Offset(end) = want.offset() else { return true };
                let have = committed
                    .find_partition(want.topic(), want.partition())
                    .and_then(|e| e.offset().to_raw())
                    .unwrap_or(0);
                end == 0 || have >= end
            });
            if done {
                return Some(());
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}
