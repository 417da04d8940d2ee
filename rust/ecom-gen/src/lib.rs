//! ecom-gen: the synthetic furniture shop. A catalog, personas and users, sessions from a
//! behavioural model with diurnal/weekly seasonality and promotion days, injected anomalies
//! and malformed records — and the truth behind all of it (purchase probability per session,
//! anomaly labels, the reason each malformed record must be rejected). Deterministic by seed.
//!
//! Sessions overlap in time as on a real site: each new session's events go into a queue
//! ordered by event time, and records leave the generator in event-time order (apart from
//! deliberately out-of-order ones).
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![deny(unused_must_use)]

pub mod anomaly;
pub mod catalog;
pub mod inference;
pub mod json;
pub mod malformed;
pub mod out_dir;
pub mod persona;
pub mod session;

use ecom_core::stream::MAX_OUT_OF_ORDER_MS;
use ecom_proto::v1::{truth_record, Event, MalformedLabel, Product, RejectReason, SessionTruth, TruthRecord};
use persona::User;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

/// What to generate. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Number of raw records to emit (valid + malformed).
    pub events: u64,
    /// Seed: the same seed and config give the same records, byte for byte.
    pub seed: u64,
    /// Event time where the simulation starts, ms since epoch.
    pub start_ms: i64,
    /// Products in the catalog.
    pub products: usize,
    /// Share of records made malformed (stateless kinds, see `malformed::KINDS`).
    pub malformed_rate: f64,
    /// Share of records delayed within a few seconds (out of order, still valid).
    pub out_of_order_rate: f64,
    /// Share of records that are exact copies of a just-sent event (a client retry); labelled
    /// REJECT_REASON_DUPLICATE.
    pub duplicate_rate: f64,
    /// Share of records whose event time lies hours behind the stream (a device that was
    /// offline); labelled REJECT_REASON_LATE.
    pub late_rate: f64,
    /// Share of records made hostile (see `malformed::Hostile`): stuffed to just under the
    /// record limit, stamped ahead of the producer's clock, or padded to near the producer's
    /// request limit. Off by default (training files stay small); `ecom demo` turns it on.
    pub hostile_rate: f64,
    /// The producer's request limit, for `Hostile::NearMaxRequest` records: librdkafka's
    /// default message.max.bytes.
    pub max_request_bytes: usize,
    /// Sessions per hour at the daily peak.
    pub peak_sessions_per_hour: f64,
    /// Share of sessions by users who were here before.
    pub returning_rate: f64,
    /// Per-session probabilities of starting each anomaly (crawler, headless bot, credential
    /// stuffing burst, card-testing burst, cart-abandon storm).
    pub anomaly_rates: AnomalyRates,
    /// A shift in the shop's behaviour mid-stream (docs/GENERATOR.md, Drift); None: none.
    pub drift: Option<Drift>,
}

/// The drift scenario: from the session that starts once `after_records` records were emitted,
/// every ordinary session changes in two ways, each optional.
/// - "A competitor's sale" (concept drift): its purchase log-odds at the decision point move by
///   `decision_logit` (e.g. -1.0). Behaviour before the decision is drawn as before, so a model
///   cannot see the change in the features it scores: its live calibration, log loss and base
///   rate move while the features' distributions do not.
/// - "A redesign that shows more products" (covariate drift): every persona views
///   `views_factor` times as many products (1.0: as before). The features move, and how intent
///   shows in them with it.
///
/// The truth's probabilities (the oracles) include both.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drift {
    /// Records emitted before the shift.
    pub after_records: u64,
    /// What the shift adds to the purchase log-odds at the decision.
    pub decision_logit: f64,
    /// What the shift multiplies the product views of every persona by.
    pub views_factor: f64,
}

/// How often each anomaly starts, as a probability per arriving session.
#[derive(Debug, Clone, Copy)]
pub struct AnomalyRates {
    /// Declared crawler.
    pub crawler: f64,
    /// Headless bot with machine-regular timing.
    pub headless: f64,
    /// Credential-stuffing burst.
    pub credential_stuffing: f64,
    /// Card-testing burst.
    pub card_testing: f64,
    /// Cart-abandon storm.
    pub cart_abandon_storm: f64,
}

impl Default for AnomalyRates {
    fn default() -> Self {
        Self {
            crawler: 0.004,
            headless: 0.002,
            credential_stuffing: 0.0006,
            card_testing: 0.0006,
            cart_abandon_storm: 0.0004,
        }
    }
}

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            events: 10_000,
            seed: 42,
            start_ms: 1_767_225_600_000, // 2026-01-01T00:00:00Z
            products: 2_400,
            malformed_rate: 0.02,
            out_of_order_rate: 0.01,
            // Off unless asked for (ecom demo asks): training data and benchmarks want the valid stream.
            duplicate_rate: 0.0,
            late_rate: 0.0,
            hostile_rate: 0.0,
            max_request_bytes: 1_000_000,
            peak_sessions_per_hour: 6_000.0,
            returning_rate: 0.35,
            anomaly_rates: AnomalyRates::default(),
            drift: None,
        }
    }
}

/// A generated record's value: a well-formed Event (which may still break a rule) or raw bytes.
#[derive(Debug, Clone, PartialEq)]
// Almost every record is an Event; boxing it would add an allocation per record for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Payload {
    /// An Event to encode; `produced_at_ms` is set by whoever produces it.
    Event(Event),
    /// Bytes that are not a valid Event.
    Bytes(Vec<u8>),
}

/// One record for ecom.events.raw.
#[derive(Debug, Clone, PartialEq)]
pub struct GenRecord {
    /// Position in the output, from 0.
    pub sequence: u64,
    /// Kafka key: the session id.
    pub key: String,
    /// The value.
    pub payload: Payload,
    /// For malformed records, the reason the job must reject them with.
    pub expected_reject: Option<RejectReason>,
    /// For hostile records, their class.
    pub hostile: Option<malformed::Hostile>,
    /// Whoever produces the record sets the event's time this far ahead of its own clock
    /// (`Hostile::ClockAhead`); files keep the simulated time plus this.
    pub clock_lead_ms: Option<i64>,
}

/// The catalog, indexed by category.
#[derive(Debug, Clone)]
pub struct Shop {
    /// All products.
    pub products: Vec<Product>,
    /// Indices into `products` per entry of `catalog::CATEGORIES`.
    pub by_category: Vec<Vec<usize>>,
}

impl Shop {
    /// Builds a catalog of `n` products from `rng`.
    pub fn new(n: usize, rng: &mut ChaCha8Rng) -> Self {
        let products = catalog::generate(n.max(catalog::CATEGORIES.len() * 5), rng);
        let by_category = catalog::CATEGORIES
            .iter()
            .map(|c| products.iter().enumerate().filter(|(_, p)| p.category == c.name).map(|(i, _)| i).collect())
            .collect();
        Self { products, by_category }
    }
}

/// Relative traffic by hour of day (UTC+1, where most customers live); peak in the evening.
const DIURNAL: [f64; 24] = [
    0.25, 0.15, 0.1, 0.08, 0.08, 0.12, 0.25, 0.4, 0.55, 0.65, 0.7, 0.75, 0.8, 0.75, 0.7, 0.7, 0.75, 0.8, 0.9, 1.0, 1.0,
    0.9, 0.7, 0.45,
];
/// Relative traffic by day of week, Monday first.
const WEEKLY: [f64; 7] = [1.0, 0.95, 0.95, 0.95, 0.9, 0.85, 1.1];

/// Whether a day (days since epoch) is a promotion day: about one day in seven, fixed by date.
pub fn promo_day(day: i64) -> bool {
    (day.wrapping_mul(2_654_435_761)).rem_euclid(97) < 14
}

fn arrival_rate(cfg: &GenConfig, t: i64) -> f64 {
    let hour = (t.div_euclid(3_600_000) + 1).rem_euclid(24) as usize;
    let day = t.div_euclid(86_400_000);
    let dow = (day + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let promo = if promo_day(day) { 1.5 } else { 1.0 };
    cfg.peak_sessions_per_hour * DIURNAL[hour] * WEEKLY[dow] * promo
}

/// An event waiting in the time-ordered queue; ordered by (event time, enqueue order) so ties
/// leave in a fixed order. The event is boxed: the heap moves entries on every push and pop,
/// and moving a whole Event each time cost more than generating it.
struct Queued {
    time_ms: i64,
    seq: u64,
    session: usize,
    event: Box<Event>,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.time_ms, self.seq) == (other.time_ms, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time_ms, self.seq).cmp(&(other.time_ms, other.seq))
    }
}

struct Pending {
    truth: SessionTruth,
    remaining: usize,
    emitted: i32,
}

/// Deterministic generator: an iterator of raw records; truth comes out through `take_truth`.
pub struct Generator {
    cfg: GenConfig,
    rng: ChaCha8Rng,
    shop: Shop,
    inference: inference::Inference,
    users: Vec<User>,
    emitted: u64,
    next_arrival_ms: i64,
    queue: BinaryHeap<Reverse<Queued>>,
    sessions: HashMap<usize, Pending>,
    next_session: usize,
    next_seq: u64,
    truth_out: VecDeque<TruthRecord>,
    delayed: Vec<(Event, usize)>,
    /// Newest event time among the valid records sent (what a watermark follows).
    newest_ms: i64,
    /// The last valid record sent and its sequence, for duplicates.
    last_valid: Option<(Event, u64)>,
}

/// Late records start after this many records, so every consumer has seen the stream begin.
const LATE_AFTER_RECORDS: u64 = 1_000;
/// How far behind the watermark a late record lies: hours, far beyond any watermark lag.
const LATE_BY_MS: std::ops::Range<i64> = 2 * 3_600_000..26 * 3_600_000;

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator").field("cfg", &self.cfg).field("emitted", &self.emitted).finish()
    }
}

impl Generator {
    /// Creates a generator; the catalog is built first from the same seed.
    pub fn new(cfg: GenConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let shop = Shop::new(cfg.products, &mut rng);
        let next_arrival_ms = cfg.start_ms;
        let inference = inference::Inference::new(&shop);
        Self {
            cfg,
            rng,
            shop,
            inference,
            users: Vec::new(),
            emitted: 0,
            next_arrival_ms,
            queue: BinaryHeap::new(),
            sessions: HashMap::new(),
            next_session: 0,
            next_seq: 0,
            truth_out: VecDeque::new(),
            delayed: Vec::new(),
            newest_ms: i64::MIN,
            last_valid: None,
        }
    }

    /// The catalog this run uses.
    pub fn catalog(&self) -> &[Product] {
        &self.shop.products
    }

    /// Truth records completed so far (sessions whose events were all emitted, malformed
    /// labels); after the iterator ends, also the sessions cut short (`truncated = true`).
    pub fn take_truth(&mut self) -> Vec<TruthRecord> {
        self.truth_out.drain(..).collect()
    }

    fn uuid7(&mut self, ms: i64) -> String {
        let bytes: [u8; 10] = self.rng.random();
        uuid::Builder::from_unix_timestamp_millis(ms.max(0) as u64, &bytes).into_uuid().to_string()
    }

    fn enqueue(&mut self, truth: SessionTruth, mut events: Vec<Event>) {
        let idx = self.next_session;
        self.next_session += 1;
        for e in &mut events {
            e.event_id = self.uuid7(e.event_time_ms);
        }
        self.sessions.insert(idx, Pending { truth, remaining: events.len(), emitted: 0 });
        for event in events {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.queue.push(Reverse(Queued {
                time_ms: event.event_time_ms,
                seq,
                session: idx,
                event: Box::new(event),
            }));
        }
    }

    /// Starts the sessions arriving at the next arrival time (thinned Poisson process).
    fn arrive(&mut self) {
        let max_rate = self.cfg.peak_sessions_per_hour * 1.1 * 1.5;
        loop {
            let gap_h: f64 = -(1.0 - self.rng.random::<f64>()).ln() / max_rate;
            self.next_arrival_ms += (gap_h * 3_600_000.0) as i64 + 1;
            if self.rng.random::<f64>() * max_rate <= arrival_rate(&self.cfg, self.next_arrival_ms) {
                break;
            }
        }
        let t = self.next_arrival_ms;
        let r = self.cfg.anomaly_rates;
        let x: f64 = self.rng.random();
        let mut ids = {
            // Session ids need the rng too; collect them from a child rng to keep borrows simple.
            let mut child = ChaCha8Rng::seed_from_u64(self.rng.random());
            move |ms: i64| {
                let bytes: [u8; 10] = child.random();
                uuid::Builder::from_unix_timestamp_millis(ms.max(0) as u64, &bytes).into_uuid().to_string()
            }
        };
        let mut cum = 0.0;
        let mut pick = |p: f64| {
            cum += p;
            x < cum
        };
        let generated = if pick(r.crawler) {
            anomaly::crawler(&self.shop, t, &mut ids, &mut self.rng)
        } else if pick(r.headless) {
            anomaly::headless(&self.shop, t, &mut ids, &mut self.rng)
        } else if pick(r.credential_stuffing) {
            anomaly::credential_stuffing(t, &mut ids, &mut self.rng)
        } else if pick(r.card_testing) {
            anomaly::card_testing(&self.shop, t, &mut ids, &mut self.rng)
        } else if pick(r.cart_abandon_storm) {
            anomaly::cart_abandon_storm(&self.shop, t, &mut ids, &mut self.rng)
        } else {
            let u = if !self.users.is_empty() && self.rng.random_bool(self.cfg.returning_rate) {
                self.rng.random_range(0..self.users.len())
            } else {
                let n = self.users.len() as u64;
                let returning_share = self.cfg.returning_rate * 0.5;
                self.users.push(persona::new_user(n, returning_share, &mut self.rng));
                self.users.len() - 1
            };
            let sid = ids(t);
            let promo = promo_day(t.div_euclid(86_400_000));
            let shift = match self.cfg.drift {
                Some(d) if self.emitted >= d.after_records => {
                    session::Shift { decision_logit: d.decision_logit, views_factor: d.views_factor }
                }
                _ => session::Shift::NONE,
            };
            let (truth, events, belief) =
                session::generate(&self.shop, &self.inference, &self.users[u], t, promo, shift, sid, &mut self.rng);
            let user = &mut self.users[u];
            user.sessions += 1;
            user.purchases_in_data += u32::from(truth.purchased);
            user.belief = belief;
            vec![(truth, events)]
        };
        for (truth, events) in generated {
            self.enqueue(truth, events);
        }
    }

    /// The event time of the simulation's next event (sessions arrive until one is due).
    fn next_time(&mut self) -> i64 {
        loop {
            match self.queue.peek().map(|Reverse(q)| q.time_ms) {
                Some(t) if t < self.next_arrival_ms => return t,
                _ => self.arrive(),
            }
        }
    }

    fn next_event(&mut self) -> Option<(Event, usize)> {
        self.next_time();
        let Reverse(q) = self.queue.pop()?;
        Some((*q.event, q.session))
    }

    fn finish_session(&mut self, idx: usize) {
        let p = self.sessions.get_mut(&idx).expect("known session");
        p.remaining -= 1;
        p.emitted += 1;
        if p.remaining == 0 {
            let p = self.sessions.remove(&idx).expect("known session");
            self.truth_out.push_back(TruthRecord { record: Some(truth_record::Record::Session(p.truth)) });
        }
    }

    fn flush_truncated(&mut self) {
        let mut left: Vec<(usize, Pending)> = self.sessions.drain().collect();
        left.sort_by_key(|(i, _)| *i);
        for (_, mut p) in left {
            if p.emitted > 0 {
                p.truth.truncated = true;
                p.truth.events = p.emitted;
                self.truth_out.push_back(TruthRecord { record: Some(truth_record::Record::Session(p.truth)) });
            }
        }
    }
}

impl Iterator for Generator {
    type Item = GenRecord;

    fn next(&mut self) -> Option<GenRecord> {
        if self.emitted >= self.cfg.events {
            return None;
        }
        let sequence = self.emitted;
        let rec = match self.duplicate(sequence) {
            Some(rec) => rec,
            None => self.fresh(sequence)?,
        };
        self.emitted += 1;
        // A time stamped ahead of the producer's clock is not the stream's progress.
        if rec.expected_reject.is_none() && rec.clock_lead_ms.is_none() {
            if let Payload::Event(e) = &rec.payload {
                self.newest_ms = self.newest_ms.max(e.event_time_ms);
                // Kept only when duplicates are asked for: a clone per record otherwise.
                if self.cfg.duplicate_rate > 0.0 {
                    self.last_valid = Some((e.clone(), sequence));
                }
            }
        }
        if self.emitted >= self.cfg.events {
            // Events still held back never went out: their sessions end truncated.
            self.delayed.clear();
            self.flush_truncated();
        }
        Some(rec)
    }
}

impl Generator {
    fn label(&mut self, sequence: u64, reason: RejectReason, event_id: String, detail: String) {
        self.truth_out.push_back(TruthRecord {
            record: Some(truth_record::Record::Malformed(MalformedLabel {
                sequence: sequence as i64,
                reason: reason as i32,
                event_id,
                detail,
            })),
        });
    }

    /// Now and then, the last valid record again, byte for byte (a client retry). Only while it
    /// is recent, so it is a duplicate and not also late.
    fn duplicate(&mut self, sequence: u64) -> Option<GenRecord> {
        if !(self.cfg.duplicate_rate > 0.0 && self.rng.random_bool(self.cfg.duplicate_rate.min(1.0))) {
            return None;
        }
        let (e, of) = self.last_valid.clone()?;
        if e.event_time_ms < self.newest_ms - MAX_OUT_OF_ORDER_MS / 2 {
            return None;
        }
        self.label(sequence, RejectReason::Duplicate, e.event_id.clone(), format!("exact copy of record {of}"));
        Some(GenRecord {
            sequence,
            key: e.session_id.clone(),
            payload: Payload::Event(e),
            expected_reject: Some(RejectReason::Duplicate),
            hostile: None,
            clock_lead_ms: None,
        })
    }

    /// The next event of the simulation, possibly delayed a little, made malformed or late.
    fn fresh(&mut self, sequence: u64) -> Option<GenRecord> {
        // A delayed (out-of-order) event leaves once a few later ones have gone out, and
        // always while it is well inside the out-of-order bound: before the event that would
        // put it half the bound behind. In a quiet shop the next event can be minutes ahead,
        // so that one is looked at before it goes out, not after.
        const HALF_BOUND_MS: i64 = MAX_OUT_OF_ORDER_MS / 2;
        let upcoming = self.next_time();
        let overdue = self
            .delayed
            .first()
            .is_some_and(|(e, _)| self.newest_ms.max(upcoming).saturating_sub(e.event_time_ms) >= HALF_BOUND_MS);
        let (mut e, idx) = if !self.delayed.is_empty() && (overdue || self.rng.random_bool(0.3)) {
            self.delayed.remove(0)
        } else {
            let next = self.next_event()?;
            if self.cfg.out_of_order_rate > 0.0
                && self.rng.random_bool(self.cfg.out_of_order_rate)
                && self.next_time().saturating_sub(next.0.event_time_ms) < HALF_BOUND_MS
            {
                self.delayed.push(next);
                self.next_event()?
            } else {
                next
            }
        };
        self.finish_session(idx);
        let key = e.session_id.clone();
        let (mut hostile, mut clock_lead_ms) = (None, None);
        let (payload, expected_reject) =
            if self.cfg.malformed_rate > 0.0 && self.rng.random_bool(self.cfg.malformed_rate.min(1.0)) {
                let event_id = e.event_id.clone();
                let m = malformed::corrupt(e, &mut self.rng);
                self.label(sequence, m.reason, event_id, m.detail);
                (Payload::Bytes(m.bytes), Some(m.reason))
            } else if sequence >= LATE_AFTER_RECORDS
                && self.newest_ms != i64::MIN
                && self.cfg.late_rate > 0.0
                && self.rng.random_bool(self.cfg.late_rate.min(1.0))
            {
                let by = self.rng.random_range(LATE_BY_MS);
                e.event_time_ms = self.newest_ms - MAX_OUT_OF_ORDER_MS - by;
                let detail = format!("event time set {} min behind the watermark", by / 60_000);
                self.label(sequence, RejectReason::Late, e.event_id.clone(), detail);
                (Payload::Event(e), Some(RejectReason::Late))
            } else if self.cfg.hostile_rate > 0.0 && self.rng.random_bool(self.cfg.hostile_rate.min(1.0)) {
                let event_id = e.event_id.clone();
                let h = malformed::hostile(e, self.cfg.max_request_bytes, &mut self.rng);
                if let Some(reason) = h.reason {
                    self.label(sequence, reason, event_id, h.detail);
                }
                hostile = Some(h.class);
                clock_lead_ms = h.clock_lead_ms;
                (h.payload, h.reason)
            } else {
                (Payload::Event(e), None)
            };
        Some(GenRecord { sequence, key, payload, expected_reject, hostile, clock_lead_ms })
    }
}

/// Writes the training files of `ecom generate --out DIR` ([`out_dir::TRAINING`]) for a whole
/// run of `cfg`: what training tests and service tests start from.
pub fn write_training_files(dir: &std::path::Path, cfg: GenConfig) -> std::io::Result<()> {
    let mut w = out_dir::Writer::create(dir, false)?;
    let mut g = Generator::new(cfg);
    for p in g.catalog() {
        w.product(p)?;
    }
    while let Some(r) = g.next() {
        w.record(&r)?;
        w.truth(&g.take_truth())?;
    }
    w.truth(&g.take_truth())?;
    w.finish()
}

/// A session's (true purchase probability, outcome) when it counts for the oracle AUC:
/// ordinary (non-anomalous) and complete.
pub fn oracle_point(t: &TruthRecord) -> Option<(f64, bool)> {
    match &t.record {
        Some(truth_record::Record::Session(s)) if s.anomaly == 0 && !s.truncated => {
            Some((s.purchase_probability, s.purchased))
        }
        _ => None,
    }
}

/// The oracle AUC from (probability, outcome) points collected with `oracle_point`: the AUC of
/// the generator's own purchase probability against the outcomes, over ordinary, complete
/// sessions. No model can expect to beat it.
pub fn oracle_auc_of(points: impl IntoIterator<Item = (f64, bool)>) -> Option<f64> {
    let (scores, labels): (Vec<f64>, Vec<bool>) = points.into_iter().unzip();
    ecom_core::metrics::roc_auc(&scores, &labels)
}

#[cfg(test)]
mod tests;
