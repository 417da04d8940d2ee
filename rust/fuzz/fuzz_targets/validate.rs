//! Raw bytes through the event parser and validator, then valid events through the session
//! features. Input: 2 bytes choose the processing clock relative to the event, the rest is the
//! record. Invariants: nothing panics; a rejection has a reason code and a message; a valid event
//! re-encodes to a valid event that is equal; its features are finite.
#![no_main]

use ecom_core::{features, validate_bytes, RejectReason};
use ecom_proto::v1::{EnrichedEvent, Event, UserHistory};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (clock, record) = data.split_at(2);
    // The clock lands near the event's own time when it decodes, so valid events are reached.
    let skew = i16::from_le_bytes([clock[0], clock[1]]) as i64 * 1_000;
    let now = Event::decode(record).map(|e| e.event_time_ms.saturating_add(skew)).unwrap_or(0);
    match validate_bytes(record, now) {
        Err(r) => {
            assert_ne!(r.reason, RejectReason::Unspecified, "a rejection without a reason");
            assert!(!r.detail.is_empty(), "{:?} without a message", r.reason);
        }
        Ok(event) => {
            let again = validate_bytes(&event.encode_to_vec(), now).expect("a valid event re-encodes valid");
            assert_eq!(again, event);
            let enriched = EnrichedEvent { event: Some(event), ..Default::default() };
            let mut state = features::new_state();
            features::update(&mut state, &enriched).expect("a fresh state takes a valid event");
            features::update(&mut state, &enriched).expect("and the same event again");
            let f = features::compute(&state, &UserHistory::default());
            assert!(f.iter().all(|x| x.is_finite()), "non-finite feature in {f:?}");
        }
    }
});
