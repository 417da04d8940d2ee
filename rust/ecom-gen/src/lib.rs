//! ecom-gen: the synthetic shop. This is the foundation's minimal generator: sessions of
//! plausible event sequences plus a configurable share of deliberately malformed records,
//! each labelled with the RejectReason the job must give it. Deterministic by seed.
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![deny(unused_must_use)]

use ecom_proto::v1::{Event, EventKind, RejectReason};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Number of records to emit (valid + malformed).
    pub events: u64,
    /// Seed: the same seed and start time give the same records.
    pub seed: u64,
    /// Share of records that are deliberately malformed, in [0, 1].
    pub malformed_rate: f64,
    /// Event time of the first session start, ms since epoch.
    pub start_ms: i64,
}

/// A generated record's value: a well-formed Event (which may still break a rule) or raw bytes.
#[derive(Debug, Clone, PartialEq)]
// Almost every record is an Event; boxing it would add an allocation per record for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Payload {
    /// An Event to encode; `produced_at_ms` is set by whoever produces it.
    Event(Event),
    /// Bytes that are not an Event at all.
    Bytes(Vec<u8>),
}

/// One record for ecom.events.raw.
#[derive(Debug, Clone, PartialEq)]
pub struct GenRecord {
    /// Kafka key: the session id.
    pub key: String,
    /// The value.
    pub payload: Payload,
    /// For malformed records, the reason the job must reject them with.
    pub expected_reject: Option<RejectReason>,
}

const COUNTRIES: &[&str] = &["DE", "FR", "NL", "GB", "US", "SE", "PL", "ES", "IT", "AT"];
const DEVICES: &[&str] = &["desktop", "mobile", "tablet"];
const CHANNELS: &[&str] = &["organic", "paid_search", "email", "social", "direct"];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
];
const QUERIES: &[&str] = &["oak dining table", "grey sofa", "king size bed", "desk lamp", "wool rug", "office chair"];
const PRODUCTS: u32 = 200;

/// The malformed kinds the foundation generator makes, with the reason each must get.
const MALFORMED: &[RejectReason] = &[
    RejectReason::Unparseable,
    RejectReason::UnknownKind,
    RejectReason::MissingId,
    RejectReason::NegativeQuantity,
    RejectReason::FutureTimestamp,
    RejectReason::MissingField,
];

/// Deterministic generator: an iterator of records.
#[derive(Debug)]
pub struct Generator {
    cfg: GenConfig,
    rng: ChaCha8Rng,
    emitted: u64,
    session: Vec<Event>,
    next_session_ms: i64,
}

impl Generator {
    /// Creates a generator for `cfg`.
    pub fn new(cfg: GenConfig) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let next_session_ms = cfg.start_ms;
        Self { cfg, rng, emitted: 0, session: Vec::new(), next_session_ms }
    }

    fn uuid7(&mut self, ms: i64) -> String {
        let bytes: [u8; 10] = self.rng.random();
        uuid::Builder::from_unix_timestamp_millis(ms.max(0) as u64, &bytes).into_uuid().to_string()
    }

    /// Builds the next session's events (in order) into `self.session`, reversed for pop().
    fn new_session(&mut self) {
        let start = self.next_session_ms;
        self.next_session_ms += self.rng.random_range(50..2_000);
        let user_id = format!("u{:06}", self.rng.random_range(0..(self.cfg.events / 8).max(10)));
        let session_id = self.uuid7(start);
        let ip = format!(
            "10.{}.{}.{}",
            self.rng.random_range(0..4),
            self.rng.random_range(0..256),
            self.rng.random_range(1..255)
        );
        let country = COUNTRIES[self.rng.random_range(0..COUNTRIES.len())].to_string();
        let device = DEVICES[self.rng.random_range(0..DEVICES.len())].to_string();
        let channel = CHANNELS[self.rng.random_range(0..CHANNELS.len())].to_string();
        let user_agent = AGENTS[self.rng.random_range(0..AGENTS.len())].to_string();
        let len = self.rng.random_range(2..12);
        let mut t = start;
        let mut events = Vec::with_capacity(len + 2);
        let mut cart: Vec<(String, i64)> = Vec::new();
        for i in 0..len {
            let kind = if i == 0 {
                EventKind::PageView
            } else {
                match self.rng.random_range(0..100) {
                    0..=34 => EventKind::ProductView,
                    35..=49 => EventKind::PageView,
                    50..=64 => EventKind::Search,
                    65..=79 => EventKind::AddToCart,
                    80..=84 => EventKind::RemoveFromCart,
                    85..=92 => EventKind::WishlistAdd,
                    _ => EventKind::Login,
                }
            };
            let mut e = Event {
                event_time_ms: t,
                user_id: user_id.clone(),
                session_id: session_id.clone(),
                kind: kind as i32,
                page: "/".into(),
                referrer: if i == 0 { "https://www.google.com/".into() } else { String::new() },
                channel: channel.clone(),
                device: device.clone(),
                user_agent: user_agent.clone(),
                ip: ip.clone(),
                country: country.clone(),
                ..Default::default()
            };
            match kind {
                EventKind::ProductView | EventKind::AddToCart | EventKind::RemoveFromCart | EventKind::WishlistAdd => {
                    let p = format!("P{:05}", self.rng.random_range(0..PRODUCTS));
                    let price = 1_000 + self.rng.random_range(0..200_000i64);
                    e.page = format!("/p/{p}");
                    e.unit_price_cents = Some(price);
                    if kind == EventKind::AddToCart {
                        e.quantity = Some(self.rng.random_range(1..4));
                        cart.push((p.clone(), price));
                    }
                    e.product_id = Some(p);
                }
                EventKind::Search => {
                    let q = QUERIES[self.rng.random_range(0..QUERIES.len())];
                    e.page = "/search".into();
                    e.search_query = Some(q.into());
                }
                _ => {}
            }
            events.push(e);
            t += self.rng.random_range(2_000..90_000);
        }
        // A session with a cart sometimes checks out and buys.
        if !cart.is_empty() && self.rng.random_bool(0.35) {
            let base = events[events.len() - 1].clone();
            let mut checkout = base.clone();
            checkout.kind = EventKind::CheckoutStart as i32;
            checkout.event_time_ms = t;
            checkout.page = "/checkout".into();
            checkout.product_id = None;
            checkout.quantity = None;
            checkout.unit_price_cents = None;
            checkout.search_query = None;
            events.push(checkout.clone());
            if self.rng.random_bool(0.7) {
                let (p, price) = cart[0].clone();
                let mut buy = checkout;
                buy.kind = EventKind::Purchase as i32;
                buy.event_time_ms = t + self.rng.random_range(20_000..180_000);
                buy.page = "/checkout/done".into();
                buy.product_id = Some(p);
                buy.quantity = Some(1);
                buy.unit_price_cents = Some(price);
                events.push(buy);
            }
        }
        for e in &mut events {
            e.event_id = self.uuid7(e.event_time_ms);
        }
        events.reverse();
        self.session = events;
    }

    fn malformed(&mut self, mut e: Event) -> GenRecord {
        let reason = MALFORMED[self.rng.random_range(0..MALFORMED.len())];
        let key = e.session_id.clone();
        let payload = match reason {
            RejectReason::Unparseable => {
                // Field 1 with wire type 7 does not exist in protobuf, so no decoder accepts it.
                let mut b = vec![0x0f];
                let n = self.rng.random_range(4..64);
                b.extend((0..n).map(|_| self.rng.random::<u8>()));
                Payload::Bytes(b)
            }
            RejectReason::UnknownKind => {
                e.kind = 42;
                Payload::Event(e)
            }
            RejectReason::MissingId => {
                e.event_id.clear();
                Payload::Event(e)
            }
            RejectReason::NegativeQuantity => {
                e.quantity = Some(-self.rng.random_range(1..5));
                Payload::Event(e)
            }
            RejectReason::FutureTimestamp => {
                e.event_time_ms += 24 * 3600 * 1000 * 365;
                Payload::Event(e)
            }
            _ => {
                e.kind = EventKind::AddToCart as i32;
                e.product_id = None;
                e.quantity = Some(1);
                Payload::Event(e)
            }
        };
        GenRecord { key, payload, expected_reject: Some(reason) }
    }
}

impl Iterator for Generator {
    type Item = GenRecord;

    fn next(&mut self) -> Option<GenRecord> {
        if self.emitted >= self.cfg.events {
            return None;
        }
        self.emitted += 1;
        if self.session.is_empty() {
            self.new_session();
        }
        let e = self.session.pop().expect("a new session has at least two events");
        if self.cfg.malformed_rate > 0.0 && self.rng.random_bool(self.cfg.malformed_rate.min(1.0)) {
            return Some(self.malformed(e));
        }
        Some(GenRecord { key: e.session_id.clone(), payload: Payload::Event(e), expected_reject: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn cfg(seed: u64) -> GenConfig {
        GenConfig { events: 2_000, seed, malformed_rate: 0.05, start_ms: 1_700_000_000_000 }
    }

    #[test]
    fn same_seed_same_records() {
        let a: Vec<_> = Generator::new(cfg(7)).collect();
        let b: Vec<_> = Generator::new(cfg(7)).collect();
        let c: Vec<_> = Generator::new(cfg(8)).collect();
        assert_eq!(a.len(), 2_000);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn labels_match_the_validator() {
        let now = 1_700_000_000_000 + 86_400_000;
        let mut malformed = 0;
        for r in Generator::new(cfg(1)) {
            let bytes = match &r.payload {
                Payload::Event(e) => e.encode_to_vec(),
                Payload::Bytes(b) => b.clone(),
            };
            let got = ecom_core::validate_bytes(&bytes, now).err().map(|x| x.reason);
            assert_eq!(got, r.expected_reject, "{r:?}");
            malformed += usize::from(r.expected_reject.is_some());
        }
        assert!((50..=150).contains(&malformed), "{malformed} malformed of 2000 at 5%");
    }
}
