//! Turning a good record into a labelled bad one. Every kind maps to the RejectReason the
//! validator (ecom-core) must give it; a test checks each against the validator.
use ecom_core::validate::MAX_TEXT_LEN;
use ecom_proto::v1::{Event, RejectReason};
use prost::Message;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// 2100-01-01T00:00:00Z in ms.
const YEAR_2100_MS: i64 = 4_102_444_800_000;

/// The stateless malformed kinds: each is rejected by the validator on its own.
pub const KINDS: &[RejectReason] = &[
    RejectReason::Unparseable, // truncated bytes
    RejectReason::Unparseable, // garbage bytes
    RejectReason::UnknownKind,
    RejectReason::MissingId,
    RejectReason::NegativeQuantity,
    RejectReason::FutureTimestamp,
    RejectReason::OversizeField,
    RejectReason::MissingField,
];

/// A malformed record: the bytes to send, the reason it must get, and what was done.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    /// Value bytes for Kafka (not necessarily an Event).
    pub bytes: Vec<u8>,
    /// The reason the job must reject it with.
    pub reason: RejectReason,
    /// What the generator did, for the truth.
    pub detail: String,
}

fn garbage(rng: &mut ChaCha8Rng) -> Vec<u8> {
    // Field 1 with wire type 7 does not exist in protobuf, so no decoder accepts it.
    let mut b = vec![0x0f];
    let n = rng.random_range(4..64);
    b.extend((0..n).map(|_| rng.random::<u8>()));
    b
}

/// Corrupts `e` into one of the stateless malformed kinds.
pub fn corrupt(mut e: Event, rng: &mut ChaCha8Rng) -> Malformed {
    let which = rng.random_range(0..KINDS.len());
    let (detail, bytes) = match which {
        0 => {
            let full = e.encode_to_vec();
            // A prefix that still decodes is a valid (shorter) event, not a malformed one:
            // try a few cut points and fall back to garbage.
            let cut = (0..8).map(|_| rng.random_range(1..full.len())).find(|&k| Event::decode(&full[..k]).is_err());
            match cut {
                Some(k) => (format!("truncated to {k} of {} bytes", full.len()), full[..k].to_vec()),
                None => ("garbage bytes".to_string(), garbage(rng)),
            }
        }
        1 => ("garbage bytes".to_string(), garbage(rng)),
        2 => {
            e.kind = rng.random_range(11..100);
            (format!("kind set to unknown number {}", e.kind), e.encode_to_vec())
        }
        3 => {
            let field = ["event_id", "user_id", "session_id"][rng.random_range(0..3)];
            match field {
                "event_id" => e.event_id.clear(),
                "user_id" => e.user_id.clear(),
                _ => e.session_id.clear(),
            }
            (format!("{field} emptied"), e.encode_to_vec())
        }
        4 => {
            e.quantity = Some(-rng.random_range(1..10));
            (format!("quantity set to {}", e.quantity.unwrap_or_default()), e.encode_to_vec())
        }
        5 => {
            // Simulated time may lie in the past, so "later than the event" is not enough:
            // put it past 2100, which no processing clock reaches.
            e.event_time_ms = YEAR_2100_MS + rng.random_range(0..365 * 86_400_000);
            ("event time moved past the year 2100".to_string(), e.encode_to_vec())
        }
        6 => {
            e.user_agent = "Mozilla/5.0 ".repeat(MAX_TEXT_LEN / 10 + 10);
            (format!("user_agent grown to {} bytes", e.user_agent.len()), e.encode_to_vec())
        }
        _ => {
            e.kind = ecom_proto::v1::EventKind::AddToCart as i32;
            e.product_id = None;
            e.quantity = Some(1);
            ("add_to_cart without product_id".to_string(), e.encode_to_vec())
        }
    };
    Malformed { bytes, reason: KINDS[which], detail }
}
