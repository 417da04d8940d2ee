//! A GuardBatchRequest off the wire through Guard's field rules (ecom-core's
//! `validate::guard_request`), item by item as CheckBatch judges them. Invariants: nothing
//! panics; a refusal names a field and says why, with a finite value and limit; an accepted
//! request has an ip or an ip_hash and a positive event time.
#![no_main]

use ecom_core::validate::guard_request;
use ecom_proto::v1::GuardBatchRequest;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = GuardBatchRequest::decode(data) else { return };
    for r in &batch.requests {
        match guard_request(r) {
            Ok(()) => {
                assert!(!(r.ip.is_empty() && r.ip_hash.is_empty()), "accepted without ip or ip_hash: {r:?}");
                assert!(r.event_time_ms > 0, "accepted a non-positive event time: {r:?}");
            }
            Err(e) => {
                assert!(!e.field.is_empty() && !e.why.is_empty(), "{e:?}");
                assert!(e.value.is_finite() && e.limit.is_finite(), "{e:?}");
            }
        }
    }
});
