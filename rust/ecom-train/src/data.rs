//! Sessions for training, read from the generator's files (`ecom generate --out DIR`): the raw
//! records, the catalog and the truth. Each event is joined to the catalog
//! (`ecom_core::features::enrich`) and each session folded with ecom-core's feature code over its
//! *decision prefix*: the events up to when the generator drew the outcome (`SessionTruth.decision_ms`). Whole sessions would
//! leak the label (every purchaser checks out).
use anyhow::{bail, Context};
use ecom_core::features;
use ecom_gen::out_dir;
use ecom_proto::v1::{truth_record, EnrichedEvent, Event, EventKind, Product, SessionState, SessionTruth, TruthRecord};
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// One session as training sees it.
#[derive(Debug, Clone)]
pub struct Session {
    /// Session id.
    pub session_id: String,
    /// User id.
    pub user_id: String,
    /// Time of the session's first event.
    pub start_ms: i64,
    /// Time of the session's last event (the whole session, not the prefix).
    pub end_ms: i64,
    /// Did it end in a purchase (the label).
    pub purchased: bool,
    /// The generator's true purchase probability (the oracle).
    pub oracle_probability: f64,
    /// That probability with the hidden intent integrated out (the observable oracle).
    pub observable_probability: f64,
    /// The best probability a model could infer, persona and history included (the inferable
    /// oracle).
    pub inferable_probability: f64,
    /// Ordinary (no anomaly) and complete: the sessions models learn from and are judged on.
    pub eligible: bool,
    /// Features state folded over the decision prefix.
    pub state: SessionState,
    /// Products bought in the whole session (the Recommend index), in order, without repeats.
    pub bought: Vec<String>,
    /// Candidate columns of `ecom train --ablation` ([`PriceNorms`]); NaN where the catalog is
    /// not at hand (sessions from MongoDB).
    pub price_norms: [f32; 2],
}

/// Prices against their category's norm at the decision, as the generator's purchase model
/// weighs the cart: ln(cart value / the same units at their categories' median catalog price),
/// clamped to ±2 (0 for an empty cart), and the mean over product views of ln(price / its
/// category's median), a sign of a persona's price taste (0 without views).
#[derive(Debug, Clone)]
pub struct PriceNorms {
    /// Median catalog price in cents per entry of `ecom_core::features::CATEGORIES`.
    median_cents: [f64; features::CATEGORIES.len()],
}

impl PriceNorms {
    /// The medians of `catalog`.
    pub fn of(catalog: &HashMap<String, Product>) -> Self {
        let median_cents = std::array::from_fn(|c| {
            let mut prices: Vec<i64> = catalog
                .values()
                .filter(|p| p.category == features::CATEGORIES[c] && p.price_cents > 0)
                .map(|p| p.price_cents)
                .collect();
            prices.sort_unstable();
            prices.get(prices.len() / 2).map_or(f64::NAN, |p| *p as f64)
        });
        Self { median_cents }
    }

    fn median(&self, category: &str) -> Option<f64> {
        let c = features::CATEGORIES.iter().position(|c| *c == category)?;
        Some(self.median_cents[c]).filter(|m| m.is_finite())
    }

    /// The two columns over a session's decision prefix (its enriched events) and the cart it
    /// left (`state.cart`).
    fn of_prefix<'e>(&self, prefix: impl Iterator<Item = &'e EnrichedEvent>, state: &SessionState) -> [f32; 2] {
        let mut category_of: HashMap<&str, &str> = HashMap::new();
        let (mut viewed, mut views) = (0.0, 0u32);
        for e in prefix {
            let Some(ev) = &e.event else { continue };
            if let Some(p) = &ev.product_id {
                category_of.insert(p.as_str(), e.category.as_str());
            }
            if let (EventKind::ProductView, Some(m)) = (ev.kind(), self.median(&e.category)) {
                if e.price_cents > 0 {
                    viewed += (e.price_cents as f64 / m).ln();
                    views += 1;
                }
            }
        }
        let (mut value, mut norm) = (0.0, 0.0);
        for line in &state.cart {
            let m = category_of.get(line.product_id.as_str()).and_then(|c| self.median(c));
            if let Some(m) = m {
                value += line.unit_price_cents as f64 * f64::from(line.quantity);
                norm += m * f64::from(line.quantity);
            }
        }
        let cart = if norm > 0.0 { (value / norm).ln().clamp(-2.0, 2.0) } else { 0.0 };
        [cart as f32, if views > 0 { (viewed / f64::from(views)) as f32 } else { 0.0 }]
    }
}

/// What loading found, for the report.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoadStats {
    /// Raw records read.
    pub records: u64,
    /// Records the truth labels malformed (skipped, as the job rejects them).
    pub malformed: u64,
    /// Sessions in the truth.
    pub sessions: u64,
    /// Ordinary, complete sessions.
    pub eligible: u64,
    /// Sessions with a purchase among the eligible.
    pub eligible_purchases: u64,
    /// Sessions whose events were not found (cut off by --events before their first event).
    pub without_events: u64,
    /// Sessions with events but no truth (not used: no label, no oracle).
    pub without_truth: u64,
    /// Events of a session that came after it was complete (a session gap behind the stream;
    /// the job would close the session before them too): counted, not folded in.
    pub after_close: u64,
    /// Sessions the job stored as more than one record (a pause longer than the session gap
    /// within them), taken whole.
    pub split_by_gap: u64,
}

/// Reads a whole file.
fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The records of a file in protobuf's delimited form (ecom_gen::out_dir), as slices of it.
pub fn delimited<'a>(data: &'a [u8], path: &Path) -> anyhow::Result<Vec<&'a [u8]>> {
    ecom_gen::out_dir::read_delimited(data).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Loads sessions from a generator output directory (ecom_gen::out_dir::TRAINING).
pub fn load_dir(dir: &Path, progress: bool) -> anyhow::Result<(Vec<Session>, LoadStats)> {
    for f in out_dir::TRAINING {
        if !dir.join(f).exists() {
            bail!(
                "{} has no {f}: --from DIR wants the output of `ecom generate --out DIR` ({})",
                dir.display(),
                out_dir::TRAINING.join(", ")
            );
        }
    }
    let path = dir.join(out_dir::CATALOG_PB);
    let catalog: HashMap<String, Product> = delimited(&read(&path)?, &path)?
        .iter()
        .enumerate()
        .map(|(i, b)| {
            Product::decode(*b)
                .map(|p| (p.product_id.clone(), p))
                .with_context(|| format!("catalog.pb record {i} is not a Product"))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut truth = HashMap::new();
    let mut malformed = HashSet::new();
    let path = dir.join(out_dir::TRUTH_PB);
    for (i, b) in delimited(&read(&path)?, &path)?.into_iter().enumerate() {
        match TruthRecord::decode(b).with_context(|| format!("truth.pb record {i}"))?.record {
            Some(truth_record::Record::Session(s)) => {
                check_truth(&s).with_context(|| path.display().to_string())?;
                truth.insert(s.session_id.clone(), s);
            }
            Some(truth_record::Record::Malformed(m)) => {
                malformed.insert(m.sequence);
            }
            None => {}
        }
    }
    let path = dir.join(out_dir::EVENTS_PB);
    let file = std::fs::File::open(&path).with_context(|| format!("reading {}", path.display()))?;
    let bar = bar(progress, file.metadata()?.len(), "reading events");
    let mut assembler = Assembler::new(truth, &catalog);
    let mut records = out_dir::Records::new(std::io::BufReader::with_capacity(1 << 20, file));
    let mut seq = 0usize;
    while let Some(bytes) = records.next_record().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))? {
        bar.inc(bytes.len() as u64 + 1);
        if malformed.contains(&(seq as i64)) {
            assembler.stats.malformed += 1;
        } else {
            let e = Event::decode(bytes)
                .with_context(|| format!("events.pb record {seq} is not an Event and the truth does not label it"))?;
            assembler.add(seq, e)?;
        }
        seq += 1;
    }
    bar.finish_and_clear();
    assembler.stats.records = records.count;
    assembler.finish()
}

/// Sessions straight from the generator, nothing written: the same sessions as [`load_dir`] of
/// `ecom generate --out` with the same `cfg`, with no disk to hold the events (~300 bytes each).
/// Malformed records are skipped as the truth labels them.
pub fn load_generated(cfg: ecom_gen::GenConfig, progress: bool) -> anyhow::Result<(Vec<Session>, LoadStats)> {
    let bar = bar(progress, cfg.events, "generating events");
    let mut gen = ecom_gen::Generator::new(cfg);
    let catalog: HashMap<String, Product> = gen.catalog().iter().map(|p| (p.product_id.clone(), p.clone())).collect();
    let mut assembler = Assembler::new(HashMap::new(), &catalog);
    let mut seq = 0usize;
    let add_truth = |assembler: &mut Assembler<'_>, records: Vec<TruthRecord>| -> anyhow::Result<()> {
        for t in records {
            if let Some(truth_record::Record::Session(s)) = t.record {
                check_truth(&s)?;
                assembler.add_truth(s);
            }
        }
        Ok(())
    };
    while let Some(rec) = gen.next() {
        add_truth(&mut assembler, gen.take_truth())?;
        if rec.expected_reject.is_some() {
            assembler.stats.malformed += 1;
        } else {
            // As the file holds it (a clock-ahead record's time included; out_dir::record_value).
            let e = match rec.payload {
                ecom_gen::Payload::Event(e) => {
                    Event { event_time_ms: e.event_time_ms + rec.clock_lead_ms.unwrap_or(0), ..e }
                }
                ecom_gen::Payload::Bytes(b) => Event::decode(b.as_slice()).context("a generated record")?,
            };
            assembler.add(seq, e)?;
        }
        seq += 1;
        bar.inc(1);
    }
    add_truth(&mut assembler, gen.take_truth())?;
    bar.finish_and_clear();
    assembler.stats.records = seq as u64;
    assembler.finish()
}

/// Keeps an event joined to its product (as the job's catalog join gives it, or
/// `features::enrich`) for its session, at position `seq` of the input (the tie break for equal
/// times), without the fields features never read (ids, user agent, IP, page, query).
pub fn add_event(events: &mut HashMap<String, SessionEvents>, seq: usize, e: EnrichedEvent) {
    let sid = e.event.as_ref().map(|ev| ev.session_id.clone()).unwrap_or_default();
    add_to(events.entry(sid).or_default(), seq, e);
}

fn add_to(events: &mut SessionEvents, seq: usize, mut e: EnrichedEvent) {
    let time = e.event.as_ref().map_or(0, |ev| ev.event_time_ms);
    e.event = e.event.map(|ev| Event {
        event_id: String::new(),
        user_agent: String::new(),
        ip: String::new(),
        page: String::new(),
        search_query: None,
        ..ev
    });
    events.push((time, seq, e));
}

/// Refuses truth written by an older generator (without what training needs).
pub fn check_truth(s: &SessionTruth) -> anyhow::Result<()> {
    if s.decision_events > 0 && s.decision_ms == 0 {
        bail!(
            "session {} has no decision_ms (written by an older ecom generate); regenerate the data with this version",
            s.session_id
        );
    }
    if s.anomaly == 0 && !s.truncated && (s.observable_probability == 0.0 || s.inferable_probability == 0.0) {
        bail!(
            "session {} has no observable_probability or inferable_probability (written by an older ecom generate); regenerate the data with this version",
            s.session_id
        );
    }
    Ok(())
}

/// Events of one session, joined to their products, with their time and position in the input
/// (the tie break).
pub type SessionEvents = Vec<(i64, usize, EnrichedEvent)>;

/// Builds the sessions at once, from every event already grouped by session (MongoDB's
/// events, in no particular order): each truth session's events folded ([`fold`]). Sessions
/// without events are counted, not kept. The same sessions as [`Assembler`] for events in
/// stream order.
pub fn assemble(
    mut events: HashMap<String, SessionEvents>,
    truth: HashMap<String, SessionTruth>,
    stats: &mut LoadStats,
) -> anyhow::Result<Vec<Session>> {
    stats.sessions = truth.len() as u64;
    let mut sessions = Vec::with_capacity(truth.len());
    for (sid, t) in truth {
        let Some(evs) = events.remove(&sid) else {
            stats.without_events += 1;
            continue;
        };
        sessions.push(fold(sid, evs, t, stats, None)?);
    }
    // Events of sessions the truth does not know (none from the generator) are counted.
    stats.without_truth += events.len() as u64;
    sort_sessions(&mut sessions);
    Ok(sessions)
}

/// One session from its events, sorted by (time, position), folded over the decision prefix;
/// its price norms when `norms` are known.
fn fold(
    sid: String,
    mut evs: SessionEvents,
    t: SessionTruth,
    stats: &mut LoadStats,
    norms: Option<&PriceNorms>,
) -> anyhow::Result<Session> {
    evs.sort_by_key(|(time, seq, _)| (*time, *seq));
    let end_ms = evs.last().map(|(time, _, _)| *time).unwrap_or(t.start_ms);
    let mut bought: Vec<String> = Vec::new();
    for e in evs.iter().filter_map(|(_, _, e)| e.event.as_ref()) {
        if let (EventKind::Purchase, Some(p)) = (e.kind(), &e.product_id) {
            if !bought.contains(p) {
                bought.push(p.clone());
            }
        }
    }
    // The prefix by time, not by count: a record of the session dropped as malformed must not
    // pull a later (post-decision) event into it.
    let mut state = features::new_state();
    let prefix = evs.iter().take_while(|(time, _, _)| t.decision_events > 0 && *time <= t.decision_ms);
    for (_, _, e) in prefix.clone() {
        features::update(&mut state, e).context("folding features")?;
    }
    let price_norms = norms.map_or([f32::NAN; 2], |n| n.of_prefix(prefix.map(|(_, _, e)| e), &state));
    Ok(Session { price_norms, ..labelled(sid, end_ms, state, bought, t, stats) })
}

/// A session with its decision-prefix `state`, labelled by its truth (the outcome, the oracles,
/// whether models learn from it), counted in `stats`.
pub fn labelled(
    session_id: String,
    end_ms: i64,
    state: SessionState,
    bought: Vec<String>,
    t: SessionTruth,
    stats: &mut LoadStats,
) -> Session {
    let eligible = t.anomaly == 0 && !t.truncated;
    stats.eligible += u64::from(eligible);
    stats.eligible_purchases += u64::from(eligible && t.purchased);
    Session {
        session_id,
        user_id: t.user_id,
        start_ms: t.start_ms,
        end_ms,
        purchased: t.purchased,
        oracle_probability: t.purchase_probability,
        observable_probability: t.observable_probability,
        inferable_probability: t.inferable_probability,
        eligible,
        state,
        bought,
        price_norms: [f32::NAN; 2],
    }
}

/// Sorts sessions into the fixed order training wants (a map's is random): by start, then id.
pub fn sort_sessions(sessions: &mut [Session]) {
    sessions.sort_by(|a, b| (a.start_ms, &a.session_id).cmp(&(b.start_ms, &b.session_id)));
}

/// Assembles sessions from events in stream order, holding only the open ones: a session whose
/// last event lies a session gap behind the newest event time seen (less the out-of-order
/// bound, as the job's watermark, and the future skew a client clock may have) is complete, and is folded and its events dropped at once. Peak
/// memory is then the open sessions' events, not the data set's.
pub struct Assembler<'a> {
    truth: HashMap<String, SessionTruth>,
    catalog: &'a HashMap<String, Product>,
    norms: PriceNorms,
    /// Open sessions: their events and the time of their last one.
    open: HashMap<String, (i64, SessionEvents)>,
    /// Sessions folded already: a later event of one is counted, not folded in.
    closed: HashSet<String>,
    newest_ms: i64,
    added_since_sweep: usize,
    sessions: Vec<Session>,
    /// What loading found so far.
    pub stats: LoadStats,
}

impl<'a> Assembler<'a> {
    /// Events between two looks for complete sessions.
    const SWEEP_EVERY: usize = 20_000;

    /// An assembler of the sessions `truth` knows, joined to `catalog`.
    pub fn new(truth: HashMap<String, SessionTruth>, catalog: &'a HashMap<String, Product>) -> Self {
        let stats = LoadStats { sessions: truth.len() as u64, ..Default::default() };
        Self {
            truth,
            catalog,
            norms: PriceNorms::of(catalog),
            open: HashMap::new(),
            closed: HashSet::new(),
            newest_ms: i64::MIN,
            added_since_sweep: 0,
            sessions: Vec::new(),
            stats,
        }
    }

    /// Adds a session's truth that comes with the stream (the generator gives it with the
    /// session's last record, so before the session can be complete).
    pub fn add_truth(&mut self, t: SessionTruth) {
        self.stats.sessions += 1;
        self.truth.insert(t.session_id.clone(), t);
    }

    /// Adds the event at position `seq` of the stream.
    pub fn add(&mut self, seq: usize, e: Event) -> anyhow::Result<()> {
        if self.closed.contains(&e.session_id) {
            self.stats.after_close += 1;
            return Ok(());
        }
        self.newest_ms = self.newest_ms.max(e.event_time_ms);
        let (sid, time) = (e.session_id.clone(), e.event_time_ms);
        let product = e.product_id.as_ref().and_then(|p| self.catalog.get(p));
        let e = features::enrich(e, product);
        let slot = self.open.entry(sid).or_insert_with(|| (i64::MIN, Vec::new()));
        slot.0 = slot.0.max(time);
        add_to(&mut slot.1, seq, e);
        self.added_since_sweep += 1;
        if self.added_since_sweep >= Self::SWEEP_EVERY {
            self.added_since_sweep = 0;
            // The newest time may be a skewed client clock's (up to the validator's future skew
            // ahead): leave that much more room before a session counts as complete.
            let horizon = self.newest_ms
                - ecom_core::stream::MAX_OUT_OF_ORDER_MS
                - ecom_core::stream::SESSION_GAP_MS
                - ecom_core::validate::MAX_FUTURE_SKEW_MS;
            let done: Vec<String> =
                self.open.iter().filter(|(_, (last, _))| *last < horizon).map(|(id, _)| id.clone()).collect();
            for id in done {
                self.close(id)?;
            }
        }
        Ok(())
    }

    fn close(&mut self, id: String) -> anyhow::Result<()> {
        let Some((_, evs)) = self.open.remove(&id) else { return Ok(()) };
        match self.truth.remove(&id) {
            Some(t) => self.sessions.push(fold(id.clone(), evs, t, &mut self.stats, Some(&self.norms))?),
            None => self.stats.without_truth += 1,
        }
        self.closed.insert(id);
        Ok(())
    }

    /// Folds the sessions still open and returns every session in a fixed order.
    pub fn finish(mut self) -> anyhow::Result<(Vec<Session>, LoadStats)> {
        let ids: Vec<String> = self.open.keys().cloned().collect();
        for id in ids {
            self.close(id)?;
        }
        self.stats.without_events += self.truth.len() as u64;
        sort_sessions(&mut self.sessions);
        Ok((self.sessions, self.stats))
    }
}

/// A progress bar on stderr, or a hidden one.
pub fn bar(show: bool, len: u64, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{msg:>18} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    b.set_message(what.to_string());
    b
}
