//! Validation of raw events. Every rule has a stable reason code (RejectReason in
//! events.proto) and a message that names the field and what was expected.
use ecom_proto::v1::{Event, EventKind, GuardRequest, RejectReason};
use prost::Message;

/// How far ahead of the processing clock an event time may be before it is rejected.
pub const MAX_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;
/// Longest accepted id (event, user, session, product).
pub const MAX_ID_LEN: usize = 64;
/// Longest accepted free-text field (user agent, page, referrer, search query).
pub const MAX_TEXT_LEN: usize = 1024;
/// Longest accepted short field (channel, device, country).
pub const MAX_SHORT_LEN: usize = 32;
/// Longest accepted ip (the text form of an IPv4 or IPv6 address).
pub const MAX_IP_LEN: usize = 64;
/// Largest accepted record, in bytes: far above any Event within the field limits (about 5 KB),
/// far below Kafka's 1 MiB request limit, so an enriched record always fits the job's producers.
/// Unknown fields count: they are dropped after validation, but not before the size is judged.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;
/// Largest accepted amount, quantity (absent or 0 counts as 1) × unit_price_cents: 10 billion in
/// the currency's units. Far above any real order, far below i64's end, so every sum over a
/// window or a session and every amount Guard is sent stays a valid non-negative i64.
pub const MAX_AMOUNT_CENTS: i64 = 1_000_000_000_000;

/// Why a record was rejected: a stable code plus a human message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", reason.as_str_name())]
pub struct Rejection {
    /// The stable reason code.
    pub reason: RejectReason,
    /// Names the field and what was expected.
    pub detail: String,
}

impl Rejection {
    pub(crate) fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self { reason, detail: detail.into() }
    }
}

/// Decodes an Event from raw bytes and validates it against the clock `now_ms`, with the
/// default record limit [`MAX_RECORD_BYTES`].
pub fn validate_bytes(bytes: &[u8], now_ms: i64) -> Result<Event, Rejection> {
    validate_bytes_within(bytes, now_ms, MAX_RECORD_BYTES)
}

/// The size rule alone: a record larger than `max_record_bytes` is OVERSIZE_RECORD. The job
/// applies it before anything else, so an oversized record is never decoded or copied.
pub fn check_record_size(len: usize, max_record_bytes: usize) -> Result<(), Rejection> {
    if len > max_record_bytes {
        return Err(Rejection::new(
            RejectReason::OversizeRecord,
            format!("record of {len} bytes is larger than the limit of {max_record_bytes}"),
        ));
    }
    Ok(())
}

/// [`validate_bytes`] with the record limit `max_record_bytes` (the job's --max-record-bytes).
/// An empty record is UNPARSEABLE: protobuf would read it as an event with every field unset.
pub fn validate_bytes_within(bytes: &[u8], now_ms: i64, max_record_bytes: usize) -> Result<Event, Rejection> {
    check_record_size(bytes.len(), max_record_bytes)?;
    if bytes.is_empty() {
        return Err(Rejection::new(RejectReason::Unparseable, "record is empty (0 bytes)"));
    }
    let event = Event::decode(bytes).map_err(|e| {
        Rejection::new(
            RejectReason::Unparseable,
            format!("record of {} bytes is not an ecom.v1.Event protobuf: {e}", bytes.len()),
        )
    })?;
    validate_event(&event, now_ms)?;
    Ok(event)
}

/// Kinds that are about one product and therefore need product_id.
fn needs_product(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::ProductView
            | EventKind::AddToCart
            | EventKind::RemoveFromCart
            | EventKind::WishlistAdd
            | EventKind::Purchase
    )
}

/// Validates a decoded event. Rules are checked in a fixed order; the first failure wins.
pub fn validate_event(e: &Event, now_ms: i64) -> Result<(), Rejection> {
    let kind = match EventKind::try_from(e.kind) {
        Ok(EventKind::Unspecified) | Err(_) => {
            return Err(Rejection::new(
                RejectReason::UnknownKind,
                format!("kind: {} is not a known EventKind (expected 1..=10)", e.kind),
            ))
        }
        Ok(k) => k,
    };
    for (name, value) in [("event_id", &e.event_id), ("user_id", &e.user_id), ("session_id", &e.session_id)] {
        if value.is_empty() {
            return Err(Rejection::new(RejectReason::MissingId, format!("{name}: must not be empty")));
        }
    }
    if e.event_time_ms <= 0 {
        return Err(Rejection::new(
            RejectReason::BadTimestamp,
            format!("event_time_ms: {} is not a time (expected ms since epoch > 0)", e.event_time_ms),
        ));
    }
    if e.event_time_ms > now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
        return Err(Rejection::new(
            RejectReason::FutureTimestamp,
            format!(
                "event_time_ms: {} is {} ms ahead of the clock (at most {MAX_FUTURE_SKEW_MS} allowed)",
                e.event_time_ms,
                e.event_time_ms - now_ms
            ),
        ));
    }
    check_lengths(e)?;
    if let Some(q) = e.quantity {
        if q < 0 {
            return Err(Rejection::new(
                RejectReason::NegativeQuantity,
                format!("quantity: {q} is negative (expected >= 1)"),
            ));
        }
    }
    if let Some(p) = e.unit_price_cents {
        if p < 0 {
            return Err(Rejection::new(
                RejectReason::NegativePrice,
                format!("unit_price_cents: {p} is negative (expected >= 0)"),
            ));
        }
    }
    if amount_cents(e).is_none() {
        return Err(Rejection::new(
            RejectReason::AmountOutOfRange,
            format!(
                "quantity {} × unit_price_cents {} is above the limit of {MAX_AMOUNT_CENTS}",
                e.quantity.unwrap_or_default(),
                e.unit_price_cents.unwrap_or_default()
            ),
        ));
    }
    if needs_product(kind) && e.product_id.as_deref().unwrap_or("").is_empty() {
        return Err(Rejection::new(
            RejectReason::MissingField,
            format!("product_id: required for kind {}", kind.as_str_name()),
        ));
    }
    // Guard's per-IP rules need it; a server always knows the address it was called from. A
    // replayed dead letter carries the IP's keyed hash instead (events.proto, Event.ip_hash).
    if e.ip.is_empty() && e.ip_hash.is_empty() {
        return Err(Rejection::new(RejectReason::MissingField, "ip: required (or ip_hash, in a replayed dead letter)"));
    }
    Ok(())
}

/// The event's amount in cents: quantity (absent or 0 counts as 1) × unit_price_cents (absent
/// counts as 0); `None` when it is above [`MAX_AMOUNT_CENTS`] or does not fit in 64 bits. Every
/// valid event has one, so revenue sums and Guard's amount_cents never overflow.
pub fn amount_cents(e: &Event) -> Option<i64> {
    let q = i64::from(e.quantity.unwrap_or(0).max(1));
    q.checked_mul(e.unit_price_cents.unwrap_or(0)).filter(|a| *a <= MAX_AMOUNT_CENTS)
}

fn check_lengths(e: &Event) -> Result<(), Rejection> {
    let opt = |o: &Option<String>| o.as_deref().map_or(0, str::len);
    let fields: [(&str, usize, usize); 14] = [
        ("event_id", e.event_id.len(), MAX_ID_LEN),
        ("user_id", e.user_id.len(), MAX_ID_LEN),
        ("session_id", e.session_id.len(), MAX_ID_LEN),
        ("product_id", opt(&e.product_id), MAX_ID_LEN),
        ("search_query", opt(&e.search_query), MAX_TEXT_LEN),
        ("page", e.page.len(), MAX_TEXT_LEN),
        ("referrer", e.referrer.len(), MAX_TEXT_LEN),
        ("user_agent", e.user_agent.len(), MAX_TEXT_LEN),
        ("channel", e.channel.len(), MAX_SHORT_LEN),
        ("device", e.device.len(), MAX_SHORT_LEN),
        ("country", e.country.len(), MAX_SHORT_LEN),
        ("ip", e.ip.len(), MAX_IP_LEN),
        ("ip_hash", e.ip_hash.len(), MAX_IP_LEN),
        ("event_id", e.event_id.len(), MAX_ID_LEN),
    ];
    for (name, len, max) in fields {
        if len > max {
            return Err(Rejection::new(
                RejectReason::OversizeField,
                format!("{name}: {len} bytes is longer than the limit of {max}"),
            ));
        }
    }
    Ok(())
}

/// Why a Guard request cannot be judged: the field at fault, what is wrong, and the number
/// and the limit behind it (a finding's value and threshold).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The request field.
    pub field: &'static str,
    /// What is wrong with it.
    pub why: String,
    /// The number behind it (a length, an amount).
    pub value: f64,
    /// The limit it broke.
    pub limit: f64,
}

/// Checks one Guard request against its field rules, first failure first. The limits are
/// event validator's in this module, and every rule here is one the
/// validator also applies or one it is wider than, so every event the validator accepts
/// makes a valid request: its fields copied over, amount_cents ecom-core's `amount_cents`
/// (what the job sends for a purchase) or the plain quantity × unit_price_cents, which is
/// never more (a unit test holds this). Ids and the IP become parts of Redis keys, hence
/// their limits.
pub fn guard_request(r: &GuardRequest) -> Result<(), FieldError> {
    let bad = |field, why, value: f64, limit: f64| Err(FieldError { field, why, value, limit });
    if r.ip.is_empty() && r.ip_hash.is_empty() {
        return bad("ip", "must not be empty (or give ip_hash)".into(), 0.0, 1.0);
    }
    if r.event_time_ms <= 0 {
        return bad("event_time_ms", "must be ms since epoch > 0".into(), r.event_time_ms as f64, 1.0);
    }
    if EventKind::try_from(r.kind).is_err() {
        return bad("kind", format!("{} is not an EventKind", r.kind), f64::from(r.kind), 0.0);
    }
    if r.quantity < 0 {
        return bad("quantity", format!("{} is negative; must be >= 0", r.quantity), f64::from(r.quantity), 0.0);
    }
    if r.amount_cents < 0 {
        let why = format!("{} is negative; must be integer cents >= 0", r.amount_cents);
        return bad("amount_cents", why, r.amount_cents as f64, 0.0);
    }
    if r.amount_cents > MAX_AMOUNT_CENTS {
        let why = format!("{} is above the limit of {MAX_AMOUNT_CENTS}", r.amount_cents);
        return bad("amount_cents", why, r.amount_cents as f64, MAX_AMOUNT_CENTS as f64);
    }
    for (field, value, max) in [
        ("event_id", &r.event_id, MAX_ID_LEN),
        ("ip", &r.ip, MAX_IP_LEN),
        ("ip_hash", &r.ip_hash, MAX_IP_LEN),
        ("user_id", &r.user_id, MAX_ID_LEN),
        ("session_id", &r.session_id, MAX_ID_LEN),
        ("product_id", &r.product_id, MAX_ID_LEN),
        ("user_agent", &r.user_agent, MAX_TEXT_LEN),
    ] {
        if value.len() > max {
            let why = format!("{} bytes is longer than the limit of {max}", value.len());
            return bad(field, why, value.len() as f64, max as f64);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000_000;

    fn valid() -> Event {
        Event {
            event_id: "0190a0e0-0000-7000-8000-000000000001".into(),
            event_time_ms: NOW - 1000,
            user_id: "u1".into(),
            session_id: "s1".into(),
            kind: EventKind::ProductView as i32,
            product_id: Some("p1".into()),
            page: "/p/p1".into(),
            country: "DE".into(),
            ip: "10.0.0.1".into(),
            ..Default::default()
        }
    }

    fn reason(e: &Event) -> Option<RejectReason> {
        validate_bytes(&e.encode_to_vec(), NOW).err().map(|r| r.reason)
    }

    #[test]
    fn accepts_a_valid_event() {
        assert_eq!(reason(&valid()), None);
    }

    #[test]
    fn a_replayed_letter_may_carry_the_ips_hash_instead() {
        let mut e = valid();
        e.ip.clear();
        e.ip_hash = "ab".repeat(32);
        assert_eq!(reason(&e), None);
        e.ip_hash = "ab".repeat(33);
        assert_eq!(reason(&e), Some(RejectReason::OversizeField));
    }

    #[test]
    fn each_rule_has_its_code() {
        type Mutation = Box<dyn Fn(&mut Event)>;
        let cases: Vec<(Mutation, RejectReason)> = vec![
            (Box::new(|e| e.kind = 0), RejectReason::UnknownKind),
            (Box::new(|e| e.kind = 99), RejectReason::UnknownKind),
            (Box::new(|e| e.event_id.clear()), RejectReason::MissingId),
            (Box::new(|e| e.session_id.clear()), RejectReason::MissingId),
            (Box::new(|e| e.event_time_ms = 0), RejectReason::BadTimestamp),
            (Box::new(|e| e.event_time_ms = NOW + MAX_FUTURE_SKEW_MS + 1), RejectReason::FutureTimestamp),
            (Box::new(|e| e.user_agent = "x".repeat(MAX_TEXT_LEN + 1)), RejectReason::OversizeField),
            (Box::new(|e| e.quantity = Some(-1)), RejectReason::NegativeQuantity),
            (Box::new(|e| e.unit_price_cents = Some(-5)), RejectReason::NegativePrice),
            (Box::new(|e| e.product_id = None), RejectReason::MissingField),
            (Box::new(|e| e.ip.clear()), RejectReason::MissingField),
            (
                Box::new(|e| {
                    e.quantity = Some(i32::MAX);
                    e.unit_price_cents = Some(i64::MAX / 2);
                }),
                RejectReason::AmountOutOfRange,
            ),
            (Box::new(|e| e.unit_price_cents = Some(MAX_AMOUNT_CENTS + 1)), RejectReason::AmountOutOfRange),
        ];
        for (mutate, want) in cases {
            let mut e = valid();
            mutate(&mut e);
            assert_eq!(reason(&e), Some(want), "{e:?}");
        }
    }

    #[test]
    fn amounts_up_to_the_limit_are_valid() {
        let mut e = valid();
        e.quantity = Some(4);
        e.unit_price_cents = Some(MAX_AMOUNT_CENTS / 4);
        assert_eq!(reason(&e), None);
        assert_eq!(amount_cents(&e), Some(MAX_AMOUNT_CENTS));
        e.quantity = None;
        assert_eq!(amount_cents(&e), Some(MAX_AMOUNT_CENTS / 4));
    }

    #[test]
    fn record_size_is_judged_before_decoding_and_empty_is_unparseable() {
        let e = valid();
        let mut bytes = e.encode_to_vec();
        // Field 100, length-delimited: an unknown field the decoder skips.
        bytes.extend([0xa2, 0x06]);
        let pad = MAX_RECORD_BYTES - bytes.len() - 2;
        prost::encoding::encode_varint(pad as u64, &mut bytes);
        bytes.extend(std::iter::repeat_n(b'x', pad));
        assert_eq!(bytes.len(), MAX_RECORD_BYTES);
        assert_eq!(validate_bytes(&bytes, NOW).map(|e| e.event_id), Ok(valid().event_id));
        bytes.push(0);
        let r = validate_bytes(&bytes, NOW).unwrap_err();
        assert_eq!(r.reason, RejectReason::OversizeRecord);
        assert!(r.detail.contains(&format!("{} bytes", MAX_RECORD_BYTES + 1)), "{r}");
        // Under a larger limit the same bytes are decoded (and the stray 0 byte is no tag).
        let r = validate_bytes_within(&bytes, NOW, MAX_RECORD_BYTES + 1).unwrap_err();
        assert_eq!(r.reason, RejectReason::Unparseable);
        assert_eq!(validate_bytes(&[], NOW).unwrap_err().reason, RejectReason::Unparseable);
    }

    #[test]
    fn garbage_is_unparseable_with_a_message() {
        let r = validate_bytes(&[0xff, 0xff, 0xff], NOW).unwrap_err();
        assert_eq!(r.reason, RejectReason::Unparseable);
        assert!(r.detail.contains("not an ecom.v1.Event"));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = validate_bytes(&bytes, NOW);
        }

        #[test]
        fn valid_events_round_trip(t in 1i64..NOW, q in 1i32..100) {
            let mut e = valid();
            e.event_time_ms = t;
            e.quantity = Some(q);
            prop_assert_eq!(validate_bytes(&e.encode_to_vec(), NOW), Ok(e));
        }
    }
}
