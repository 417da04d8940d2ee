//! What the sink reads: the five kinds of record, decoding a Kafka payload into one (or into
//! the reason it goes to the dead letter), and the batch the stores write at once.
use ecom_proto::v1::{EnrichedEvent, InvalidEvent, ModelQuality, Session, WindowMetrics};
use prost::Message as _;

/// The kind of record a topic carries. Names the counters and the dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `ecom.v1.EnrichedEvent` from ecom.events.enriched.
    Event,
    /// `ecom.v1.Session` from ecom.sessions.
    Session,
    /// `ecom.v1.WindowMetrics` from ecom.metrics.
    WindowMetrics,
    /// `ecom.v1.InvalidEvent` from ecom.events.invalid: a raw record the job rejected.
    Invalid,
    /// `ecom.v1.ModelQuality` from ecom.quality: a model version's live quality per window.
    Quality,
}

impl Kind {
    /// Every kind, in the order the sink reports them.
    pub const ALL: [Kind; 5] = [Kind::Event, Kind::Session, Kind::WindowMetrics, Kind::Invalid, Kind::Quality];

    /// The name used in metric labels and dead-letter documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Session => "session",
            Kind::WindowMetrics => "window_metrics",
            Kind::Invalid => "invalid",
            Kind::Quality => "quality",
        }
    }
}

/// One decoded record with the id its documents are stored under.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a Record lives only from decode to Batch::push, which moves it into a Vec of its own type"
)]
pub enum Record {
    /// An enriched event; id = event.event_id.
    Event(EnrichedEvent),
    /// A closed session; id = Session.id.
    Session(Session),
    /// One window's metrics; id = WindowMetrics.id.
    WindowMetrics(WindowMetrics),
    /// A record the job rejected; id = its raw record's position, [`invalid_id`].
    Invalid(InvalidEvent),
    /// One window's live model quality; id = ModelQuality.id.
    Quality(ModelQuality),
}

impl Record {
    /// The id its documents are stored under (checked non-empty by [`decode`]).
    pub fn id(&self) -> String {
        match self {
            Record::Event(e) => e.event.as_ref().map(|x| x.event_id.clone()).unwrap_or_default(),
            Record::Session(s) => s.id.clone(),
            Record::WindowMetrics(m) => m.id.clone(),
            Record::Invalid(e) => invalid_id(e).unwrap_or_default(),
            Record::Quality(q) => q.id.clone(),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Record::Event(_) => Kind::Event,
            Record::Session(_) => Kind::Session,
            Record::WindowMetrics(_) => Kind::WindowMetrics,
            Record::Invalid(_) => Kind::Invalid,
            Record::Quality(_) => Kind::Quality,
        }
    }
}

/// `<topic>/<partition>/<offset>` of the raw record an InvalidEvent reports on: one raw record
/// has one outcome, so its position is the dead letter's id (None without a source).
pub fn invalid_id(e: &InvalidEvent) -> Option<String> {
    e.source.as_ref().filter(|s| !s.topic.is_empty()).map(|s| format!("{}/{}/{}", s.topic, s.partition, s.offset))
}

/// Decodes a payload of `kind`. The error is the dead letter's reason: it names the message
/// that was expected and what was wrong. A record without its id is refused too, because the
/// stores could not overwrite it on a replay.
pub fn decode(kind: Kind, payload: &[u8]) -> Result<Record, String> {
    match kind {
        Kind::Event => match EnrichedEvent::decode(payload) {
            Ok(e) if e.event.as_ref().is_some_and(|ev| !ev.event_id.is_empty()) => Ok(Record::Event(e)),
            Ok(_) => Err("enriched event without event.event_id".into()),
            Err(err) => Err(format!("not an ecom.v1.EnrichedEvent: {err}")),
        },
        Kind::Session => match Session::decode(payload) {
            Ok(s) if !s.id.is_empty() => Ok(Record::Session(s)),
            Ok(_) => Err("session without id".into()),
            Err(err) => Err(format!("not an ecom.v1.Session: {err}")),
        },
        Kind::WindowMetrics => match WindowMetrics::decode(payload) {
            Ok(m) if !m.id.is_empty() => Ok(Record::WindowMetrics(m)),
            Ok(_) => Err("window metrics without id".into()),
            Err(err) => Err(format!("not an ecom.v1.WindowMetrics: {err}")),
        },
        Kind::Invalid => match InvalidEvent::decode(payload) {
            Ok(e) if invalid_id(&e).is_some() => Ok(Record::Invalid(e)),
            Ok(_) => Err("invalid event without source topic".into()),
            Err(err) => Err(format!("not an ecom.v1.InvalidEvent: {err}")),
        },
        Kind::Quality => match ModelQuality::decode(payload) {
            Ok(q) if !q.id.is_empty() => Ok(Record::Quality(q)),
            Ok(_) => Err("model quality without id".into()),
            Err(err) => Err(format!("not an ecom.v1.ModelQuality: {err}")),
        },
    }
}

/// A record the sink could not decode, with where it was in Kafka and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// What the topic should have carried.
    pub kind: Kind,
    /// Kafka position of the record: also its dead-letter id, so a re-read overwrites it.
    pub topic: String,
    /// Partition of the record.
    pub partition: i32,
    /// Offset of the record.
    pub offset: i64,
    /// The record value as it was on the wire.
    pub raw: Vec<u8>,
    /// Why it was refused (from [`decode`]).
    pub reason: String,
}

impl DeadLetter {
    /// `<topic>/<partition>/<offset>`: the dead-letter document's id.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

/// Records written to the stores together; Kafka offsets are committed after the whole batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Enriched events (ecom-events-*, ecom.events).
    pub events: Vec<EnrichedEvent>,
    /// Closed sessions (ecom-sessions-*, ecom.sessions).
    pub sessions: Vec<Session>,
    /// Window metrics (ecom-metrics-*, ecom.metrics).
    pub metrics: Vec<WindowMetrics>,
    /// Records the job rejected (ecom-invalid-*, ecom.invalid).
    pub invalid: Vec<InvalidEvent>,
    /// Live model quality windows (ecom-quality-*, ecom.quality).
    pub quality: Vec<ModelQuality>,
    /// Undecodable records (ecom.sink_deadletter).
    pub dead: Vec<DeadLetter>,
    /// (topic, partition, offset) the sink read each record from, by (kind, record id): what a
    /// store's rejection of its document is traced back to.
    pub sources: std::collections::HashMap<(Kind, String), (String, i32, i64)>,
}

impl Batch {
    /// Adds a decoded record read at `topic`/`partition`/`offset`.
    pub fn push_from(&mut self, r: Record, topic: &str, partition: i32, offset: i64) {
        self.sources.insert((r.kind(), r.id()), (topic.to_string(), partition, offset));
        self.push(r);
    }

    /// Where the record of `kind` stored under `id` was read: (topic, partition, offset), or
    /// ("", -1, -1) when not known.
    pub fn source_of(&self, kind: Kind, id: &str) -> (String, i32, i64) {
        self.sources.get(&(kind, id.to_string())).cloned().unwrap_or((String::new(), -1, -1))
    }

    /// Adds a decoded record.
    pub fn push(&mut self, r: Record) {
        match r {
            Record::Event(e) => self.events.push(e),
            Record::Session(s) => self.sessions.push(s),
            Record::WindowMetrics(m) => self.metrics.push(m),
            Record::Invalid(e) => self.invalid.push(e),
            Record::Quality(q) => self.quality.push(q),
        }
    }

    /// Records of every kind, dead letters included.
    pub fn len(&self) -> usize {
        self.events.len()
            + self.sessions.len()
            + self.metrics.len()
            + self.invalid.len()
            + self.quality.len()
            + self.dead.len()
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decoded records of `kind` in the batch.
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Event => self.events.len(),
            Kind::Session => self.sessions.len(),
            Kind::WindowMetrics => self.metrics.len(),
            Kind::Invalid => self.invalid.len(),
            Kind::Quality => self.quality.len(),
        }
    }

    /// Dead letters of `kind` in the batch.
    pub fn dead_count(&self, kind: Kind) -> usize {
        self.dead.iter().filter(|d| d.kind == kind).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecom_proto::v1::{Event, SourceOffset};

    #[test]
    fn each_kind_decodes_its_own_message() {
        let e =
            EnrichedEvent { event: Some(Event { event_id: "e1".into(), ..Default::default() }), ..Default::default() };
        let s = Session { id: "s1@5".into(), start_ms: 5, ..Default::default() };
        let m = WindowMetrics { id: "60000/sofas".into(), views: 3, ..Default::default() };
        assert_eq!(decode(Kind::Event, &e.encode_to_vec()), Ok(Record::Event(e)));
        assert_eq!(decode(Kind::Session, &s.encode_to_vec()), Ok(Record::Session(s)));
        assert_eq!(decode(Kind::WindowMetrics, &m.encode_to_vec()), Ok(Record::WindowMetrics(m)));
        let source = SourceOffset { topic: "ecom.events.raw".into(), partition: 1, offset: 7 };
        let i = InvalidEvent { source: Some(source), reason_code: "LATE".into(), ..Default::default() };
        assert_eq!(invalid_id(&i).as_deref(), Some("ecom.events.raw/1/7"));
        assert_eq!(decode(Kind::Invalid, &i.encode_to_vec()), Ok(Record::Invalid(i)));
    }

    #[test]
    fn garbage_and_records_without_id_name_their_reason() {
        let garbage = [0x0fu8, 1, 2]; // field 1 with wire type 7: no protobuf decodes it
        for (kind, message) in [
            (Kind::Event, "ecom.v1.EnrichedEvent"),
            (Kind::Session, "ecom.v1.Session"),
            (Kind::WindowMetrics, "ecom.v1.WindowMetrics"),
            (Kind::Invalid, "ecom.v1.InvalidEvent"),
        ] {
            let why = decode(kind, &garbage).unwrap_err();
            assert!(why.starts_with(&format!("not an {message}: ")), "{why}");
        }
        // An empty value (a tombstone) decodes to defaults: refused for its missing id.
        assert_eq!(decode(Kind::Event, &[]).unwrap_err(), "enriched event without event.event_id");
        assert_eq!(decode(Kind::Session, &[]).unwrap_err(), "session without id");
        assert_eq!(decode(Kind::WindowMetrics, &[]).unwrap_err(), "window metrics without id");
        assert_eq!(decode(Kind::Invalid, &[]).unwrap_err(), "invalid event without source topic");
    }

    #[test]
    fn batch_counts_per_kind() {
        let mut b = Batch::default();
        assert!(b.is_empty());
        b.push(Record::Session(Session { id: "s".into(), ..Default::default() }));
        b.push(Record::WindowMetrics(WindowMetrics { id: "m".into(), ..Default::default() }));
        b.dead.push(DeadLetter {
            kind: Kind::Session,
            topic: "ecom.sessions".into(),
            partition: 1,
            offset: 42,
            raw: vec![1],
            reason: "session without id".into(),
        });
        assert_eq!(b.len(), 3);
        assert_eq!((b.count(Kind::Event), b.count(Kind::Session), b.count(Kind::WindowMetrics)), (0, 1, 1));
        assert_eq!((b.dead_count(Kind::Session), b.dead_count(Kind::Event)), (1, 0));
        assert_eq!(b.dead[0].id(), "ecom.sessions/1/42");
    }
}
