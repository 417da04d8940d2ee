//! From sessions to a feature matrix: user history and LSH neighbour features computed in time
//! order from sessions that had *ended* before the one at hand (nothing from its future), and
//! the split by user and by time.
use crate::data::Session;
use ecom_core::features;
use ecom_core::lsh::{Lsh, LshParams};
use ecom_model::recommend;
use ecom_proto::v1::UserHistory;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use ecom_model::neighbours::{feature_names, NeighbourIndex};

/// Where a session went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training users, sessions before the time cut.
    Train,
    /// Validation users, sessions from the time cut on (early stopping).
    Valid,
    /// Test users, sessions from the time cut on (the reported numbers).
    Test,
    /// Not used for learning or judging (anomalous, incomplete, or on the wrong side of the cut
    /// for its user's split). Still feeds history and neighbours.
    None,
}

/// The split rule: users are hashed into train / valid / test shares; training sessions come
/// before the time cut, validation and test sessions from it on.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct SplitRule {
    /// Share of users for training (percent).
    pub train_pct: u64,
    /// Share of users for validation (percent); the rest is test.
    pub valid_pct: u64,
    /// Sessions starting before this are training time, from it on evaluation time.
    pub cut_ms: i64,
}

impl SplitRule {
    /// 60 / 20 / 20 by user, time cut at the median start of the eligible sessions.
    pub fn for_sessions(sessions: &[Session]) -> Self {
        let mut starts: Vec<i64> = sessions.iter().filter(|s| s.eligible).map(|s| s.start_ms).collect();
        starts.sort_unstable();
        let cut_ms = starts.get(starts.len() / 2).copied().unwrap_or(0);
        Self { train_pct: 60, valid_pct: 20, cut_ms }
    }

    /// The user's share: FNV-1a of the id, so it is the same on every run and machine.
    pub fn user_bucket(user_id: &str) -> u64 {
        let mut h = fnv::FnvHasher::default();
        std::hash::Hasher::write(&mut h, user_id.as_bytes());
        std::hash::Hasher::finish(&h) % 100
    }

    /// The split of one session.
    pub fn split(&self, s: &Session) -> Split {
        if !s.eligible {
            return Split::None;
        }
        let b = Self::user_bucket(&s.user_id);
        let early = s.start_ms < self.cut_ms;
        match (b < self.train_pct, b < self.train_pct + self.valid_pct, early) {
            (true, _, true) => Split::Train,
            (false, true, false) => Split::Valid,
            (false, false, false) => Split::Test,
            _ => Split::None,
        }
    }
}

/// The model's inputs.
#[derive(Debug, Clone)]
pub struct Table {
    /// Row-major features, `rows × names.len()`.
    pub x: Vec<f32>,
    /// Column names.
    pub names: Vec<String>,
    /// Labels.
    pub y: Vec<bool>,
    /// The generator's probability per row (the oracle).
    pub oracle: Vec<f64>,
    /// The generator's probability without its hidden term per row (the observable oracle).
    pub observable: Vec<f64>,
    /// The inferable oracle's probability per row.
    pub inferable: Vec<f64>,
    /// Split per row.
    pub split: Vec<Split>,
    /// Session id per row.
    pub session_id: Vec<String>,
    /// User id per row.
    pub user_id: Vec<String>,
}

impl Table {
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.names.len()
    }

    /// Row indices of a split.
    pub fn rows_of(&self, split: Split) -> Vec<usize> {
        (0..self.y.len()).filter(|&i| self.split[i] == split).collect()
    }

    /// The features of the given rows, row-major.
    pub fn x_of(&self, rows: &[usize]) -> Vec<f32> {
        let c = self.cols();
        rows.iter().flat_map(|&r| self.x[r * c..(r + 1) * c].iter().copied()).collect()
    }
}

/// Writes the table as CSV: `session_id,user_id,split,purchased,oracle,observable,inferable` and then
/// each feature by name, one row per session in start order.
pub fn write_csv(table: &Table, path: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(f);
    writeln!(w, "session_id,user_id,split,purchased,oracle,observable,inferable,{}", table.names.join(","))?;
    let c = table.cols();
    for r in 0..table.y.len() {
        let split = serde_json::to_value(table.split[r])?;
        write!(
            w,
            "{},{},{},{},{},{},{}",
            table.session_id[r],
            table.user_id[r],
            split.as_str().unwrap_or_default(),
            u8::from(table.y[r]),
            table.oracle[r],
            table.observable[r],
            table.inferable[r]
        )?;
        for v in &table.x[r * c..(r + 1) * c] {
            write!(w, ",{v}")?;
        }
        writeln!(w)?;
    }
    w.flush().with_context(|| format!("writing {}", path.display()))
}

/// A step of [`walk`].
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// The session at this position has ended before the next one starts.
    Ended(usize),
    /// The session at this position starts.
    Starts(usize),
}

/// Walks sessions sorted by start time: before each session starts, every session that ended
/// (its last event) before that start is announced once. What a step sees at `Starts(i)` is
/// therefore exactly the past of session `i`; the rest end after the last start.
pub fn walk(sessions: &[Session], mut step: impl FnMut(Step)) {
    let mut pending: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    for (i, s) in sessions.iter().enumerate() {
        while let Some(Reverse((end, j))) = pending.peek().copied() {
            if end >= s.start_ms {
                break;
            }
            pending.pop();
            step(Step::Ended(j));
        }
        step(Step::Starts(i));
        pending.push(Reverse((s.end_ms, i)));
    }
    while let Some(Reverse((_, j))) = pending.pop() {
        step(Step::Ended(j));
    }
}

/// Builds the table from sessions sorted by start time. History and neighbour statistics at a
/// session's start hold exactly the sessions that ended before it.
pub fn build(
    sessions: &[Session],
    params: LshParams,
    rule: &SplitRule,
) -> anyhow::Result<(Table, NeighbourIndex, recommend::IndexFile)> {
    let lsh = Lsh::new(params)?;
    let mut rec = recommend::IndexFile { num_perm: params.num_perm, num_bands: params.num_bands, sessions: Vec::new() };
    let names = feature_names();
    let mut table = Table {
        x: Vec::with_capacity(sessions.len() * names.len()),
        names,
        y: Vec::new(),
        oracle: Vec::new(),
        observable: Vec::new(),
        inferable: Vec::new(),
        split: Vec::new(),
        session_id: Vec::new(),
        user_id: Vec::new(),
    };
    let mut index = NeighbourIndex::default();
    let mut history: HashMap<&str, UserHistory> = HashMap::new();
    let mut buckets_of: Vec<Vec<u64>> = Vec::with_capacity(sessions.len());
    let (mut ended, mut ended_purchases) = (0u64, 0u64);
    // The index `ecom serve` gets holds every session, those ending after the last start too.
    walk(sessions, |step| {
        let i = match step {
            Step::Ended(j) => {
                let done = &sessions[j];
                index.add(&buckets_of[j], done.purchased);
                let h = history.entry(done.user_id.as_str()).or_default();
                h.prior_sessions += 1;
                h.prior_purchases += u32::from(done.purchased);
                h.last_session_ms = h.last_session_ms.max(done.start_ms);
                ended += 1;
                ended_purchases += u64::from(done.purchased);
                return;
            }
            Step::Starts(i) => i,
        };
        let s = &sessions[i];
        let sig = lsh.signature(&s.state.tokens);
        let buckets = lsh.band_buckets(&sig);
        if s.eligible && !s.bought.is_empty() && !s.state.tokens.is_empty() {
            rec.sessions.push(recommend::PastSession { signature: sig, products: s.bought.clone() });
        }
        let user = history.get(s.user_id.as_str()).cloned().unwrap_or_default();
        let f = features::compute(&s.state, &user);
        let prior = if ended == 0 { 0.05 } else { ended_purchases as f64 / ended as f64 };
        let nb = index.features(&buckets, prior);
        table.x.extend(f.iter().chain(nb.iter()).map(|v| *v as f32));
        table.y.push(s.purchased);
        table.oracle.push(s.oracle_probability);
        table.observable.push(s.observable_probability);
        table.inferable.push(s.inferable_probability);
        table.split.push(rule.split(s));
        table.session_id.push(s.session_id.clone());
        table.user_id.push(s.user_id.clone());
        buckets_of.push(buckets);
    });
    let purchases = sessions.iter().filter(|s| s.purchased).count();
    index.prior = purchases as f64 / sessions.len().max(1) as f64;
    rec.truncate_to_recent();
    Ok((table, index, rec))
}
