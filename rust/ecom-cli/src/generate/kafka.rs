//! `ecom generate` into Kafka: the idempotent, batching producer and its delivery reports.
use super::*;

/// Which topic a record goes to; an event record carries the RejectReason number it is
/// labelled with (0: valid), so delivery reports map each Kafka position to its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dest {
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
pub(super) struct Deliveries {
    /// (partition, offset) of each delivered event record, with its label.
    positions: Vec<((i32, i64), i32)>,
    failed: u64,
    first_error: Option<String>,
}

/// Collects delivery reports; they arrive on the producing thread during `poll`.
#[derive(Default)]
pub(super) struct Reports(std::sync::Mutex<Deliveries>);

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
pub(super) fn to_kafka(a: &GenerateArgs, cfg: GenConfig) -> anyhow::Result<GenerateSummary> {
    let producer: BaseProducer<Reports> = ecom_sink::kafka::client(&a.kafka.brokers)?
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
        .with_context(|| format!("creating a Kafka producer for {}", a.kafka.brokers))?;
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
pub(super) fn generate_batches(
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
pub(super) fn produce_batches(
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

pub(super) fn truth_key(t: &TruthRecord) -> String {
    match &t.record {
        Some(truth_record::Record::Session(s)) => s.session_id.clone(),
        Some(truth_record::Record::Malformed(m)) => format!("malformed-{}", m.sequence),
        None => String::new(),
    }
}
