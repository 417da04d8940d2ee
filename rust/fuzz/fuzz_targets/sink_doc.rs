//! A Kafka payload through the sink's record → document path: decode as each of the five kinds
//! the sink reads (ecom-sink's `record::decode`), then build the document both stores get and
//! its daily index name. Input: one byte picks the kind, the rest is the payload. Invariants:
//! nothing panics; a refusal has a reason; a document is a JSON object that serialises, and a
//! decoded record has the non-empty id it is stored under.
#![no_main]

use ecom_sink::doc;
use ecom_sink::record::{decode, Kind, Record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&k, payload)) = data.split_first() else { return };
    let kind = Kind::ALL[usize::from(k) % Kind::ALL.len()];
    let record = match decode(kind, payload) {
        Err(reason) => {
            assert!(!reason.is_empty());
            return;
        }
        Ok(r) => r,
    };
    assert!(!record.id().is_empty(), "{record:?}");
    let (body, time) = match &record {
        Record::Event(e) => (doc::to_doc(e, 1), e.event.as_ref().map_or(0, |x| x.event_time_ms)),
        Record::Session(s) => (doc::session_doc(s, 1), s.start_ms),
        Record::WindowMetrics(m) => (doc::metrics_doc(m, 1), m.window_start_ms),
        Record::Invalid(e) => (doc::invalid_doc(e, 1), e.rejected_at_ms),
        Record::Quality(q) => (doc::quality_doc(q, 1), q.window_start_ms),
    };
    assert!(body.is_object(), "{body}");
    serde_json::to_vec(&body).expect("a document serialises");
    assert!(doc::daily_index("ecom-events", time).starts_with("ecom-events-"));
});
