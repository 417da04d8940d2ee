//! Turning a good record into a labelled bad one. Every kind maps to the RejectReason the
//! validator (ecom-core) must give it; a test checks each against the validator.
use ecom_core::validate::{MAX_AMOUNT_CENTS, MAX_RECORD_BYTES, MAX_TEXT_LEN};
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
    RejectReason::OversizeRecord, // a few bytes over the record limit (unknown-field stuffing)
    RejectReason::MissingField,   // empty ip
    RejectReason::AmountOutOfRange, // quantity × unit price beyond the limit or 64 bits
    RejectReason::Unparseable,    // empty record
    RejectReason::Unparseable,    // invalid UTF-8 in a string field
    RejectReason::Unparseable,    // a known field with the wrong wire type
    RejectReason::Unparseable,    // a length prefix far beyond the record
];

/// Field number of the unknown field used for stuffing: no Event field has it.
const STUFFING_FIELD: u32 = 100;

/// `bytes` with an unknown length-delimited field appended that brings it to exactly `size`
/// bytes (at least a few bytes more than `bytes`). Protobuf decoders skip it.
pub fn stuff_to(mut bytes: Vec<u8>, size: usize) -> Vec<u8> {
    let key = u64::from(STUFFING_FIELD << 3 | 2);
    let mut head = Vec::new();
    prost::encoding::encode_varint(key, &mut head);
    // The length's own varint size depends on the length: find the fixed point.
    let mut pad = size.saturating_sub(bytes.len() + head.len() + 1);
    loop {
        let total = bytes.len() + head.len() + prost::encoding::encoded_len_varint(pad as u64) + pad;
        match total.cmp(&size) {
            std::cmp::Ordering::Equal => break,
            std::cmp::Ordering::Greater if pad > 0 => pad -= 1,
            std::cmp::Ordering::Less => pad += 1,
            _ => break,
        }
    }
    bytes.extend(head);
    prost::encoding::encode_varint(pad as u64, &mut bytes);
    bytes.resize(bytes.len() + pad, b'x');
    bytes
}

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
        7 => {
            e.kind = ecom_proto::v1::EventKind::AddToCart as i32;
            e.product_id = None;
            e.quantity = Some(1);
            ("add_to_cart without product_id".to_string(), e.encode_to_vec())
        }
        8 => {
            let size = MAX_RECORD_BYTES + rng.random_range(1..=64);
            let over = size - MAX_RECORD_BYTES;
            (
                format!("stuffed with an unknown field to {size} bytes, {over} over the limit"),
                stuff_to(e.encode_to_vec(), size),
            )
        }
        9 => {
            e.ip.clear();
            ("ip emptied".to_string(), e.encode_to_vec())
        }
        10 => {
            e.kind = ecom_proto::v1::EventKind::Purchase as i32;
            if e.product_id.as_deref().unwrap_or("").is_empty() {
                e.product_id = Some("p-overflow".into());
            }
            if rng.random_bool(0.5) {
                // Wraps to a negative number in 64-bit arithmetic that does not check.
                e.quantity = Some(i32::MAX);
                e.unit_price_cents = Some(i64::MAX / 1_000);
            } else {
                e.quantity = Some(1);
                e.unit_price_cents = Some(MAX_AMOUNT_CENTS + 1);
            }
            (
                format!(
                    "purchase of quantity {} at unit_price_cents {}",
                    e.quantity.unwrap_or_default(),
                    e.unit_price_cents.unwrap_or_default()
                ),
                e.encode_to_vec(),
            )
        }
        11 => ("empty record (0 bytes)".to_string(), Vec::new()),
        12 => {
            // event_id (field 1) holding bytes that are not UTF-8.
            let mut b = vec![0x0a, 4, 0xff, 0xfe, 0xc3, 0x28];
            b.extend(e.encode_to_vec());
            ("event_id set to 4 bytes that are not UTF-8".to_string(), b)
        }
        13 => {
            // event_time_ms (field 2, a varint) sent as a length-delimited field.
            let mut b = e.encode_to_vec();
            b.extend([0x12, 3, b'1', b'2', b'3']);
            ("event_time_ms sent with wire type 2 (length-delimited)".to_string(), b)
        }
        _ => {
            // page (field 10) announcing 2 GiB that are not there.
            let mut b = e.encode_to_vec();
            b.push(0x52);
            prost::encoding::encode_varint(0x7fff_fff0, &mut b);
            b.extend(b"/p/");
            ("page's length prefix says 2 GiB, 3 bytes follow".to_string(), b)
        }
    };
    Malformed { bytes, reason: KINDS[which], detail }
}

/// Records that test the job's limits without being malformed in themselves: each is either
/// valid (the job must accept it and come to no harm) or labelled with the reason it must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hostile {
    /// A valid event padded with an unknown field to just under the record limit: accepted,
    /// and the enriched record carries no unknown field.
    Stuffed,
    /// A valid event whose time the producer sets ahead of its own clock, by less than the
    /// validator's skew (a client with a fast clock): accepted, and it must not make on-time
    /// events late.
    ClockAhead,
    /// An event padded to a few bytes under the producer's request limit: OVERSIZE_RECORD, and
    /// its dead letter must still fit the job's producers.
    NearMaxRequest,
}

impl Hostile {
    /// Every hostile class, in the order they are drawn.
    pub const ALL: [Hostile; 3] = [Hostile::Stuffed, Hostile::ClockAhead, Hostile::NearMaxRequest];

    /// A short name for summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Hostile::Stuffed => "stuffed_to_limit",
            Hostile::ClockAhead => "clock_ahead",
            Hostile::NearMaxRequest => "near_max_request",
        }
    }
}

/// How far ahead of the producer's clock a [`Hostile::ClockAhead`] event is stamped: the
/// ~290 s of a badly skewed client, inside the validator's 300 s.
pub const CLOCK_AHEAD_MS: std::ops::RangeInclusive<i64> = 280_000..=295_000;

/// A hostile record made from `e`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostileRecord {
    /// Which class.
    pub class: Hostile,
    /// The value: an Event for [`Hostile::ClockAhead`] (its time is set when produced), bytes
    /// otherwise.
    pub payload: crate::Payload,
    /// The reason the job must reject it with, if any.
    pub reason: Option<RejectReason>,
    /// How far ahead of the producer's clock its event time must be set.
    pub clock_lead_ms: Option<i64>,
    /// What was done, for the truth of labelled ones.
    pub detail: String,
}

/// Makes `e` into one hostile record; `max_request_bytes` is the producer's request limit.
pub fn hostile(e: Event, max_request_bytes: usize, rng: &mut ChaCha8Rng) -> HostileRecord {
    let class = Hostile::ALL[rng.random_range(0..Hostile::ALL.len())];
    match class {
        Hostile::Stuffed => {
            let size = MAX_RECORD_BYTES - rng.random_range(0..64);
            HostileRecord {
                class,
                payload: crate::Payload::Bytes(stuff_to(e.encode_to_vec(), size)),
                reason: None,
                clock_lead_ms: None,
                detail: format!("stuffed with an unknown field to {size} bytes"),
            }
        }
        Hostile::ClockAhead => {
            let lead = rng.random_range(CLOCK_AHEAD_MS);
            HostileRecord {
                class,
                payload: crate::Payload::Event(e),
                reason: None,
                clock_lead_ms: Some(lead),
                detail: format!("event time {lead} ms ahead of the producer's clock"),
            }
        }
        Hostile::NearMaxRequest => {
            // Room for the key, the record's framing and the request's own overhead.
            let size = max_request_bytes.saturating_sub(1_024 + rng.random_range(0..256));
            HostileRecord {
                class,
                payload: crate::Payload::Bytes(stuff_to(e.encode_to_vec(), size)),
                reason: Some(RejectReason::OversizeRecord),
                clock_lead_ms: None,
                detail: format!("stuffed with an unknown field to {size} bytes, near the producer's request limit"),
            }
        }
    }
}
