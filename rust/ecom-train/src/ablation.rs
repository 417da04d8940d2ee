//! `ecom train --ablation`: what each group of features buys XGBoost. One load, one table, one
//! split; XGBoost (the served model's settings) is fitted once per variant, with a group of
//! columns left out or a candidate group added, and judged on the same test rows next to the
//! three oracles. Writes no model.
use crate::data::Session;
use crate::prepare::{self, Split};
use crate::{boost, subset, Input, TrainOptions};
use ecom_core::metrics;
use std::collections::HashMap;
use std::time::Instant;

/// One fit: the model's columns minus those starting with any of `drop`, plus candidate groups.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    /// What the row of the table says.
    pub name: &'static str,
    /// Prefixes of the column names left out.
    pub drop: &'static [&'static str],
    /// Candidate groups added.
    pub add: &'static [Candidate],
}

/// A group of candidate columns, not (yet) served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidate {
    /// [`DEPTH_NAMES`]: the means over the user's earlier, ended sessions.
    HistoryDepth,
    /// [`PRICE_NAMES`]: prices against their category's median ([`crate::data::PriceNorms`]).
    PriceNorms,
}

impl Candidate {
    fn width(self) -> usize {
        match self {
            Candidate::HistoryDepth => DEPTH_NAMES.len(),
            Candidate::PriceNorms => PRICE_NAMES.len(),
        }
    }
}

/// The [`Candidate::PriceNorms`] columns.
pub const PRICE_NAMES: [&str; 2] = ["cart_price_vs_category_median_ln", "viewed_price_vs_category_median_ln"];

/// The variants `--ablation` fits, the served model's columns first.
pub const VARIANTS: &[Variant] = &[
    Variant { name: "all features (as served)", drop: &[], add: &[] },
    Variant { name: "without the neighbour features", drop: &["neighbour_"], add: &[] },
    Variant { name: "without the user's history", drop: &["user_prior_", "days_since_last_session"], add: &[] },
    Variant { name: "without the local hour", drop: &["hour_local"], add: &[] },
    Variant { name: "without the category focus", drop: &["focus_"], add: &[] },
    Variant {
        name: "without dwell and gaps",
        drop: &["mean_product_dwell_s", "duration_s", "mean_gap_s", "max_gap_s"],
        add: &[],
    },
    Variant {
        name: "without the cart",
        drop: &["cart_", "log_cart_value_eur", "add_to_carts", "remove_from_carts"],
        add: &[],
    },
    Variant {
        name: "without device, channel, campaign",
        drop: &["device_", "channel_", "campaign", "external_referrer"],
        add: &[],
    },
    Variant { name: "with the earlier sessions' means", drop: &[], add: &[Candidate::HistoryDepth] },
    Variant { name: "with prices against category medians", drop: &[], add: &[Candidate::PriceNorms] },
    Variant { name: "with both candidates", drop: &[], add: &[Candidate::HistoryDepth, Candidate::PriceNorms] },
];

/// Candidate columns: the means, over the user's earlier sessions that ended before this one
/// starts, of what shows a persona (NaN, XGBoost's missing value, without any).
pub const DEPTH_NAMES: [&str; 8] = [
    "history_mean_product_views",
    "history_mean_page_views",
    "history_mean_searches",
    "history_mean_wishlist_adds",
    "history_mean_add_to_carts",
    "history_mean_units_per_line",
    "history_mean_ln_viewed_price",
    "history_mean_product_dwell_s",
];

/// One fitted variant.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// [`Variant::name`].
    pub variant: &'static str,
    /// Columns it read.
    pub features: usize,
    /// Test ROC AUC.
    pub roc_auc: f64,
    /// Test log loss.
    pub log_loss: f64,
    /// Boosting rounds kept.
    pub rounds: u32,
    /// Wall time of the fit.
    pub seconds: f64,
}

/// What `--ablation` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ablation {
    /// Where the sessions came from.
    pub source: String,
    /// Test sessions and purchases.
    pub test: (usize, usize),
    /// The oracles' test ROC AUC: the generator's, the observable and the inferable one.
    pub oracle: [f64; 3],
    /// One row per variant, in [`VARIANTS`] order.
    pub rows: Vec<Row>,
}

/// Fits every variant in [`VARIANTS`]; `report` sees each row as it is done.
pub fn ablate(input: Input, opts: &TrainOptions, mut report: impl FnMut(&Row)) -> anyhow::Result<Ablation> {
    let Input { source, sessions, .. } = input;
    let rule = prepare::SplitRule::for_sessions(&sessions);
    let (table, _, _) = prepare::build(&sessions, opts.lsh, &rule)?;
    let depth = history_depth(&sessions, &table);
    let prices: Vec<f32> = sessions.iter().flat_map(|s| s.price_norms).collect();
    drop(sessions);
    let (tr, va, te) = (table.rows_of(Split::Train), table.rows_of(Split::Valid), table.rows_of(Split::Test));
    let (ytr, yva, yte) = (subset(&table.y, &tr), subset(&table.y, &va), subset(&table.y, &te));
    let auc = |p: &[f64]| metrics::roc_auc(p, &yte).unwrap_or(f64::NAN);
    let oracle =
        [auc(&subset(&table.oracle, &te)), auc(&subset(&table.observable, &te)), auc(&subset(&table.inferable, &te))];
    let cfg = crate::boost_config(opts, &ytr);
    let mut rows = Vec::new();
    for v in VARIANTS {
        let t = Instant::now();
        let keep: Vec<usize> =
            (0..table.cols()).filter(|&c| !v.drop.iter().any(|p| table.names[c].starts_with(p))).collect();
        let width = keep.len() + v.add.iter().map(|c| c.width()).sum::<usize>();
        let x = |rows: &[usize]| -> Vec<f32> {
            let mut x = Vec::with_capacity(rows.len() * width);
            for &r in rows {
                x.extend(keep.iter().map(|&c| table.x[r * table.cols() + c]));
                for c in v.add {
                    let (cols, w) = (if *c == Candidate::HistoryDepth { &depth } else { &prices }, c.width());
                    x.extend_from_slice(&cols[r * w..(r + 1) * w]);
                }
            }
            x
        };
        let dtr = boost::matrix(&x(&tr), tr.len(), Some(&ytr))?;
        let dva = boost::matrix(&x(&va), va.len(), Some(&yva))?;
        let dte = boost::matrix(&x(&te), te.len(), None)?;
        let (bst, info) = boost::train_gbdt(&dtr, &dva, &cfg, &indicatif::ProgressBar::hidden())?;
        let p = boost::predict(&bst, &dte)?;
        let row = Row {
            variant: v.name,
            features: width,
            roc_auc: auc(&p),
            log_loss: metrics::log_loss(&p, &yte).unwrap_or(f64::NAN),
            rounds: info.rounds,
            seconds: t.elapsed().as_secs_f64(),
        };
        report(&row);
        rows.push(row);
    }
    Ok(Ablation { source, test: (te.len(), yte.iter().filter(|y| **y).count()), oracle, rows })
}

/// The [`DEPTH_NAMES`] columns, row-major in the table's row order (sessions by start), from the
/// behaviour columns `table` holds for each earlier session. A session joins its user's means
/// once it has ended before the current one starts, as history does in [`prepare::build`].
pub fn history_depth(sessions: &[Session], table: &prepare::Table) -> Vec<f32> {
    let col = |name: &str| table.names.iter().position(|n| n == name).expect("a core feature");
    let cols = [
        "product_views",
        "page_views",
        "searches",
        "wishlist_adds",
        "add_to_carts",
        "cart_lines",
        "cart_units",
        "mean_viewed_price_cents",
        "mean_product_dwell_s",
    ]
    .map(col);
    let mut sums: HashMap<&str, (u32, [f64; DEPTH_NAMES.len()])> = HashMap::new();
    let mut out = Vec::with_capacity(sessions.len() * DEPTH_NAMES.len());
    prepare::walk(sessions, |step| match step {
        prepare::Step::Ended(j) => {
            let row = &table.x[j * table.cols()..(j + 1) * table.cols()];
            let [views, pages, searches, wishlists, adds, lines, units, price, dwell] = cols.map(|c| f64::from(row[c]));
            let values = [
                views,
                pages,
                searches,
                wishlists,
                adds,
                if lines > 0.0 { units / lines } else { 1.0 },
                price.max(1.0).ln(),
                dwell,
            ];
            let e = sums.entry(sessions[j].user_id.as_str()).or_default();
            e.0 += 1;
            for (sum, v) in e.1.iter_mut().zip(values) {
                *sum += v;
            }
        }
        prepare::Step::Starts(i) => match sums.get(sessions[i].user_id.as_str()) {
            Some((n, sum)) => out.extend(sum.iter().map(|v| (v / f64::from(*n)) as f32)),
            None => out.extend([f32::NAN; DEPTH_NAMES.len()]),
        },
    });
    out
}

/// The table `--ablation` prints.
pub fn summary(a: &Ablation) -> String {
    let [oracle, observable, inferable] = a.oracle;
    let mut s = format!(
        "XGBoost per feature set, {} test sessions ({} purchases) from {}\n  {:<36} {:>8} {:>8} {:>8} {:>9} {:>7} {:>7}\n",
        a.test.0, a.test.1, a.source, "", "columns", "ROC AUC", "vs all", "log loss", "rounds", "fit s"
    );
    let all = a.rows.first().map_or(f64::NAN, |r| r.roc_auc);
    for r in &a.rows {
        s += &format!(
            "  {:<36} {:>8} {:>8.4} {:>+8.4} {:>9.4} {:>7} {:>7.1}\n",
            r.variant,
            r.features,
            r.roc_auc,
            r.roc_auc - all,
            r.log_loss,
            r.rounds,
            r.seconds
        );
    }
    s += &format!(
        "  oracle {oracle:.4}, observable oracle {observable:.4}, inferable oracle {inferable:.4}: all features sit {:.4} below the inferable oracle\n",
        inferable - all
    );
    s
}
