//! What a demo run found: [`Summary`] holds every count the closing summary shows,
//! [`Summary::reconcile`] (pure) says what does not add up, and the summary prints as text or,
//! with `--json`, as one JSON object (what the end-to-end tests read).
use super::*;
use serde::Serialize;

/// Where the stores stand after a run: this run's enriched events and dead letters (found by id),
/// and the enriched events' totals.
#[derive(Debug, Default, Serialize)]
pub(crate) struct StoreCounts {
    /// This run's enriched events found in Elasticsearch / MongoDB, by id.
    pub(crate) es_events: u64,
    pub(crate) mongo_events: u64,
    /// All events the stores hold (`ecom-events-*`, `ecom.events`): both stores got every run.
    /// Zero when not counted.
    pub(crate) es_events_total: u64,
    pub(crate) mongo_events_total: u64,
    /// This run's dead letters found in Elasticsearch / MongoDB, by id.
    pub(crate) es_dead_letters: u64,
    pub(crate) mongo_dead_letters: u64,
}

/// The Flink job of the run, as last seen before the demo cancelled it.
#[derive(Debug, Default, Serialize)]
pub(crate) struct JobState {
    pub(crate) id: String,
    /// Flink's state (RUNNING while the demo waited).
    pub(crate) state: String,
    pub(crate) restarts: u64,
    /// `--keep-job`: left running after the run.
    pub(crate) kept: bool,
}

/// A model version's live quality: its score at each closed session's decision point (the
/// same cut training uses) against whether the session bought, next to its offline test set.
#[derive(Debug, Default, Serialize)]
pub(crate) struct LiveQuality {
    pub(crate) model_version: String,
    /// Scores of a shadow version (ecom models shadow) at the same decision points, not answers.
    pub(crate) shadow: bool,
    /// Closed sessions it scored, and how many of them bought.
    pub(crate) sessions: u64,
    pub(crate) purchases: u64,
    pub(crate) roc_auc: Option<f64>,
    pub(crate) pr_auc: Option<f64>,
    pub(crate) brier: Option<f64>,
    pub(crate) log_loss: Option<f64>,
    /// The version's ROC AUC on its offline test set (metrics.json), when readable.
    pub(crate) offline_roc_auc: Option<f64>,
    /// Buyers a calibrated model expects (Σ p), observed over expected, and how far off in the
    /// binomial noise's standard deviations; `miscalibrated` when |z| > 3.
    pub(crate) expected_purchases: f64,
    pub(crate) observed_over_expected: Option<f64>,
    pub(crate) calibration_z: Option<f64>,
    pub(crate) miscalibrated: bool,
}

impl LiveQuality {
    /// One per model version of `scores`, the offline numbers read from `models_dir`.
    pub(crate) fn of(scores: &[DecisionScore], models_dir: &std::path::Path) -> Vec<Self> {
        // (version, shadow) → (scores, outcomes)
        type Scores = (Vec<f64>, Vec<bool>);
        let mut by: BTreeMap<(&str, bool), Scores> = BTreeMap::new();
        for s in scores {
            let e = by.entry((s.model_version.as_str(), s.shadow)).or_default();
            e.0.push(s.probability);
            e.1.push(s.purchased);
        }
        by.into_iter()
            .map(|((v, shadow), (p, y))| {
                let m = ecom_model::evaluation::Scores::of(&p, &y);
                let mut c = ecom_model::drift::Calibration::default();
                p.iter().zip(&y).for_each(|(p, y)| c.add(*p, *y));
                LiveQuality {
                    model_version: v.to_string(),
                    shadow,
                    sessions: p.len() as u64,
                    purchases: y.iter().filter(|y| **y).count() as u64,
                    roc_auc: m.roc_auc,
                    pr_auc: m.pr_auc,
                    brier: m.brier,
                    log_loss: m.log_loss,
                    offline_roc_auc: ecom_model::offline_roc_auc(models_dir, v),
                    expected_purchases: c.expected,
                    observed_over_expected: c.ratio(),
                    calibration_z: c.z(),
                    miscalibrated: c.flagged(),
                }
            })
            .collect()
    }
}

/// What does not add up between the job's live quality records and the run's own sessions:
/// each record must count exactly the sessions of its version that closed in its window, and
/// give the ROC AUC ecom-core computes on their scores binned as the job bins them (1/1,000),
/// and the same expected buyers and variance (to 1e-6).
pub(crate) fn check_quality(windows: &[ModelQuality], scores: &[DecisionScore]) -> Vec<String> {
    let bin = |p: f64| ((p.clamp(0.0, 1.0) * 1000.0) as usize).min(999) as f64;
    windows
        .iter()
        .filter_map(|q| {
            let mut c = ecom_model::drift::Calibration::default();
            let (p, y): (Vec<f64>, Vec<bool>) = scores
                .iter()
                .filter(|s| {
                    s.model_version == q.model_version
                        && s.shadow == q.shadow
                        && (q.window_start_ms..q.window_end_ms).contains(&s.close_ms)
                })
                .inspect(|s| c.add(s.probability, s.purchased))
                .map(|s| (bin(s.probability), s.purchased))
                .unzip();
            let auc = ecom_core::metrics::roc_auc(&p, &y);
            let same_auc = match (auc, q.roc_auc) {
                (Some(a), Some(b)) => (a - b).abs() < 1e-9,
                (a, b) => a.is_none() && b.is_none(),
            };
            let same_calibration = (c.expected - q.expected_purchases).abs() < 1e-6
                && (c.variance - q.purchase_variance).abs() < 1e-6;
            let same_counts = q.sessions as u64 == c.sessions && q.purchases as u64 == c.purchases;
            (!same_counts || !same_auc || !same_calibration).then(|| {
                format!(
                    "quality window {} counts {} sessions ({} bought, ROC AUC {:?}, {:.6} expected) where the run's sessions give {} ({}, {auc:?}, {:.6})",
                    q.id, q.sessions, q.purchases, q.roc_auc, q.expected_purchases, c.sessions, c.purchases, c.expected
                )
            })
        })
        .collect()
}

/// Everything a demo run found.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Summary {
    /// Wall time of the whole demo.
    pub(crate) seconds: f64,
    /// Raw records produced; the generator's labels of the malformed ones, by reason.
    pub(crate) produced: u64,
    pub(crate) labelled_invalid: BTreeMap<String, u64>,
    /// Hostile records produced, by class.
    pub(crate) hostile: BTreeMap<String, u64>,
    /// Enriched records out of the job.
    pub(crate) enriched: u64,
    /// Everything else the output topics held of the run: dead letters by reason, Guard,
    /// Score and Recommend answers and fallbacks, sessions, metrics windows, duplicates, sizes.
    #[serde(flatten)]
    pub(crate) outcome: Outcome,
    pub(crate) stores: StoreCounts,
    /// Records per second the generator was paced at (none: a burst).
    pub(crate) rate: Option<f64>,
    /// Seconds from the first record produced to the last one accounted for.
    pub(crate) slice_seconds: f64,
    /// p50 and p99 ms from produced, per stage (ingested, enriched, indexed by the sink).
    pub(crate) latency_ms: BTreeMap<String, [i64; 2]>,
    pub(crate) job: JobState,
    /// A process the demo started that exited during the run, and how.
    pub(crate) child_exited: Option<String>,
    /// How the serving model did on this run's closed sessions, per model version.
    pub(crate) live_quality: Vec<LiveQuality>,
    /// The live dashboard's address when it answered.
    pub(crate) dashboard: Option<String>,
    /// Where the dashboard was looked for.
    pub(crate) dashboard_url: String,
    /// Whether every count adds up, and if not, why ([`Summary::reconcile`]).
    pub(crate) reconciled: bool,
    pub(crate) why: Vec<String>,
}

impl Summary {
    /// What does not add up: every record produced came out once, enriched or dead-lettered
    /// under its own label, and is in both stores; the stores agree in total; nothing exceeds
    /// the record limit; no process died. Empty when the run reconciles.
    pub(crate) fn reconcile(&self) -> Vec<String> {
        let s = &self.stores;
        let (enriched, invalid) = (self.enriched, self.outcome.invalid as u64);
        let mut why = Vec::new();
        if self.produced != enriched + invalid {
            why.push(format!("produced {} != enriched {enriched} + invalid {invalid}", self.produced));
        }
        if s.es_events != enriched {
            why.push(format!("Elasticsearch holds {} of {enriched} enriched", s.es_events));
        }
        if s.mongo_events != enriched {
            why.push(format!("MongoDB holds {} of {enriched} enriched", s.mongo_events));
        }
        if s.es_dead_letters != invalid || s.mongo_dead_letters != invalid {
            why.push(format!(
                "the stores hold {} (Elasticsearch) and {} (MongoDB) of {invalid} dead letters",
                s.es_dead_letters, s.mongo_dead_letters
            ));
        }
        if s.es_events_total != s.mongo_events_total {
            why.push(format!(
                "store totals differ: Elasticsearch {}, MongoDB {}",
                s.es_events_total, s.mongo_events_total
            ));
        }
        if self.outcome.duplicates > 0 {
            why.push(format!("{} raw records came out more than once", self.outcome.duplicates));
        }
        if self.outcome.metrics_without_epsilon > 0 {
            why.push(format!("{} metrics records do not say the ε they spent", self.outcome.metrics_without_epsilon));
        }
        if self.outcome.sessions_unknown_user > 0 {
            why.push(format!("{} sessions without a session_id or user_id", self.outcome.sessions_unknown_user));
        }
        // A record stuffed to the limit comes out without what it was stuffed with; a dead
        // letter keeps at most the limit's worth of its record.
        let limit = ecom_core::validate::MAX_RECORD_BYTES;
        if self.outcome.largest_enriched_bytes > limit {
            why.push(format!(
                "an enriched record of {} bytes is over the record limit {limit}",
                self.outcome.largest_enriched_bytes
            ));
        }
        if self.outcome.largest_invalid_bytes > limit + 4_096 {
            why.push(format!(
                "a dead letter of {} bytes is over the record limit {limit}",
                self.outcome.largest_invalid_bytes
            ));
        }
        if let Some(exited) = &self.child_exited {
            why.push(format!("ecom {exited} during the run"));
        }
        if self.outcome.mislabelled > 0 {
            why.push(format!(
                "{} raw records did not get their own label ({})",
                self.outcome.mislabelled,
                self.outcome.mislabelled_examples.join("; ")
            ));
        }
        why.extend(check_quality(&self.outcome.quality, &self.outcome.decision_scores));
        if self.outcome.invalid_by_reason != self.labelled_invalid {
            why.push("invalid reasons differ from the generator's labels".into());
        }
        why
    }

    /// The summary as text, on stdout.
    pub(crate) fn print(&self) {
        let s = &self.stores;
        println!();
        println!("ecom demo summary ({:.0}s in all)", self.seconds);
        println!("  produced to {RAW:<22} {:>8}", self.produced);
        println!("  enriched in {ENRICHED:<22} {:>8}", self.enriched);
        let labelled: u64 = self.labelled_invalid.values().sum();
        println!("  invalid  in {INVALID:<22} {:>8}   (generator labelled {labelled} malformed)", self.outcome.invalid);
        for (reason, n) in &self.outcome.invalid_by_reason {
            let want = self.labelled_invalid.get(reason).copied().unwrap_or(0);
            println!("      {reason:<40} {n:>6}   labelled {want}");
        }
        println!("  guard verdicts                        {}", generate::fmt_counts(&self.outcome.verdicts));
        println!("  guard fallbacks                       {:>8}", self.outcome.guard_fallbacks);
        println!(
            "  scored (purchase probability)         {:>8}   (score fallbacks {})",
            self.outcome.scored, self.outcome.score_fallbacks
        );
        println!(
            "  with recommendations                  {:>8}   of {} product views and carts (recommend fallbacks {})",
            self.outcome.recommended, self.outcome.recommend_asked, self.outcome.recommend_fallbacks
        );
        println!(
            "  with the user's earlier sessions      {:>8}   (events of a returning user: user features from the job's user step)",
            self.outcome.with_user_history
        );
        println!(
            "  sessions closed in {SESSIONS:<18} {:>8}   ({} events, {} purchased; open sessions close after 30 min of event time)",
            self.outcome.sessions, self.outcome.session_events, self.outcome.sessions_purchased
        );
        let num = |x: Option<f64>| x.map_or_else(|| "n/a".into(), |x| format!("{x:.3}"));
        for q in &self.live_quality {
            println!(
                "  live model quality, {:<17} {:>8}   sessions {} at their decision point, {} bought: ROC AUC {} (offline test set {}), PR AUC {}, Brier {}",
                q.model_version,
                q.sessions,
                if q.shadow { "scored in shadow" } else { "scored" },
                q.purchases,
                num(q.roc_auc),
                num(q.offline_roc_auc),
                num(q.pr_auc),
                num(q.brier)
            );
            println!(
                "    calibration: {} bought against {:.1} predicted, ratio {}, z {}{}",
                q.purchases,
                q.expected_purchases,
                num(q.observed_over_expected),
                q.calibration_z.map_or_else(|| "n/a".into(), |z| format!("{z:+.1}")),
                if q.miscalibrated {
                    " — MISCALIBRATED (|z| > 3: off the predictions beyond chance)"
                } else {
                    " (within chance, |z| ≤ 3)"
                }
            );
        }
        let counted: i64 = self.outcome.quality.iter().map(|q| q.sessions).sum();
        println!(
            "  live quality windows in {QUALITY:<13} {:>8}   ({counted} sessions in closed windows of 10 min by close; each matches the run's sessions)",
            self.outcome.quality_windows
        );
        println!(
            "  metrics records in {METRICS:<18} {:>8}   (ε spent per record: {})",
            self.outcome.metrics,
            fmt_epsilons(&self.outcome.metrics_epsilon)
        );
        println!("  duplicates in Kafka outputs           {:>8}", self.outcome.duplicates);
        if !self.hostile.is_empty() {
            println!("  hostile records produced              {}", generate::fmt_counts(&self.hostile));
        }
        println!(
            "  largest record written                {:>8} bytes enriched, {} bytes dead letter ({} kept a prefix only)",
            self.outcome.largest_enriched_bytes, self.outcome.largest_invalid_bytes, self.outcome.invalid_truncated
        );
        println!(
            "  documents in Elasticsearch (this run) {:>8}   (ecom-events-* holds {} in all)",
            s.es_events, s.es_events_total
        );
        println!(
            "  documents in MongoDB (this run)       {:>8}   (ecom.events holds {} in all)",
            s.mongo_events, s.mongo_events_total
        );
        println!(
            "  dead letters in Elasticsearch / MongoDB {:>6} / {}   (ecom-invalid-*, ecom.invalid; this run)",
            s.es_dead_letters, s.mongo_dead_letters
        );
        let paced = match self.rate {
            Some(r) => format!("paced at {r:.0} records/s (--rate)"),
            None => "unpaced (--rate 0): a burst, so the latencies below measure its queue".to_string(),
        };
        println!(
            "  throughput raw -> enriched|invalid    {:>8.0} events/s ({} records in {:.1}s, {paced})",
            self.produced as f64 / self.slice_seconds.max(1e-9),
            self.produced,
            self.slice_seconds
        );
        if !self.latency_ms.is_empty() {
            let stages: Vec<String> =
                self.latency_ms.iter().map(|(s, [p50, p99])| format!("{s} {p50} / {p99}")).collect();
            println!("  latency from produced, p50 / p99 ms   {}", stages.join(", "));
            println!(
                "      (a new job: its first seconds include JIT warm-up; searchable and at steady state: ecom bench e2e)"
            );
        }
        let after = if self.job.kept { "left running" } else { "then cancelled by the demo" };
        println!("  Flink job state                       {:>8}   (job {}, {after})", self.job.state, self.job.id);
        println!(
            "  Flink job restarts                    {:>8}{}",
            self.job.restarts,
            if self.job.restarts > 0 { "   (each failure was printed as a warning while waiting)" } else { "" }
        );
        match &self.dashboard {
            Some(url) => println!("  dashboard                             {url}/ (live, keeps running)"),
            None => println!(
                "  dashboard                             not running at {} (start it with dev/dashboard)",
                self.dashboard_url
            ),
        }
        if self.reconciled {
            println!("reconciled: yes");
        } else {
            println!("reconciled: no ({})", self.why.join("; "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balanced() -> Summary {
        let labels = BTreeMap::from([("REJECT_REASON_UNPARSEABLE".to_string(), 2)]);
        Summary {
            produced: 10,
            enriched: 8,
            labelled_invalid: labels.clone(),
            outcome: Outcome { invalid: 2, invalid_by_reason: labels, ..Default::default() },
            stores: StoreCounts {
                es_events: 8,
                mongo_events: 8,
                es_events_total: 20,
                mongo_events_total: 20,
                es_dead_letters: 2,
                mongo_dead_letters: 2,
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_balanced_run_reconciles_and_each_gap_is_named() {
        assert_eq!(balanced().reconcile(), Vec::<String>::new());
        let lost = Summary { enriched: 7, ..balanced() };
        let why = lost.reconcile();
        assert!(why.iter().any(|w| w == "produced 10 != enriched 7 + invalid 2"), "{why:?}");
        assert!(why.iter().any(|w| w.starts_with("Elasticsearch holds 8 of 7")), "{why:?}");
        let mut diverged = balanced();
        diverged.stores.mongo_events_total = 19;
        assert_eq!(diverged.reconcile(), vec!["store totals differ: Elasticsearch 20, MongoDB 19".to_string()]);
        let mut relabelled = balanced();
        relabelled.outcome.invalid_by_reason = BTreeMap::from([("REJECT_REASON_LATE".to_string(), 2)]);
        assert_eq!(relabelled.reconcile(), vec!["invalid reasons differ from the generator's labels".to_string()]);
        let died = Summary { child_exited: Some("sink exited (signal: 9)".into()), ..balanced() };
        assert_eq!(died.reconcile(), vec!["ecom sink exited (signal: 9) during the run".to_string()]);
    }

    #[test]
    fn live_quality_is_per_model_version_next_to_its_offline_numbers() {
        let q = LiveQuality::of(&scores(), std::path::Path::new("/nonexistent"));
        assert_eq!(
            q.iter().map(|q| (q.model_version.as_str(), q.sessions, q.purchases)).collect::<Vec<_>>(),
            [("v1", 3, 2), ("v2", 1, 1)]
        );
        assert_eq!(q[0].roc_auc, Some(1.0));
        assert_eq!(q[1].roc_auc, None, "one class only: no AUC");
        assert_eq!(q[0].offline_roc_auc, None, "no metrics.json to read");
        assert!((q[0].expected_purchases - 1.2).abs() < 1e-12 && !q[0].miscalibrated);
    }

    /// Four sessions closing at 0, 1, 2 and 3 minutes.
    fn scores() -> Vec<DecisionScore> {
        [("v2", 0.9, true), ("v1", 0.8, true), ("v1", 0.1, false), ("v1", 0.3, true)]
            .iter()
            .zip(0..)
            .map(|((v, p, y), i)| DecisionScore {
                model_version: v.to_string(),
                shadow: false,
                event_id: format!("e{i}"),
                probability: *p,
                purchased: *y,
                close_ms: i * 60_000,
            })
            .collect()
    }

    #[test]
    fn a_quality_window_must_count_its_own_sessions() {
        let window = |version: &str, sessions, purchases, roc_auc| {
            // Σ p and Σ p (1 − p) of each version's sessions.
            let (expected_purchases, purchase_variance) = if version == "v1" { (1.2, 0.46) } else { (0.9, 0.09) };
            ModelQuality {
                id: format!("0/{version}"),
                window_start_ms: 0,
                window_end_ms: 600_000,
                model_version: version.into(),
                sessions,
                purchases,
                roc_auc,
                expected_purchases,
                purchase_variance,
                ..Default::default()
            }
        };
        let right = [window("v1", 3, 2, Some(1.0)), window("v2", 1, 1, None)];
        assert_eq!(check_quality(&right, &scores()), Vec::<String>::new());
        let why = check_quality(&[window("v1", 2, 2, Some(1.0)), window("v2", 1, 1, Some(0.5))], &scores());
        assert_eq!(why.len(), 2, "{why:?}");
        let off = ModelQuality { expected_purchases: 1.0, ..window("v1", 3, 2, Some(1.0)) };
        assert_eq!(check_quality(&[off], &scores()).len(), 1, "another expected count must not pass");
        assert!(why[0].starts_with("quality window 0/v1 counts 2 sessions"), "{why:?}");
        // A shadow version's window counts only shadow scores.
        let mut with_shadow = scores();
        with_shadow.push(DecisionScore { shadow: true, model_version: "v2".into(), ..with_shadow[1].clone() });
        let shadow = ModelQuality {
            id: "0/v2/shadow".into(),
            shadow: true,
            expected_purchases: 0.8,
            purchase_variance: 0.16,
            ..window("v2", 1, 1, None)
        };
        assert_eq!(check_quality(&[shadow, window("v2", 1, 1, None)], &with_shadow), Vec::<String>::new());
        // A window that ends before the later sessions close counts only the earlier ones.
        let early = ModelQuality {
            window_end_ms: 150_000,
            expected_purchases: 0.9,
            purchase_variance: 0.25,
            ..window("v1", 2, 1, Some(1.0))
        };
        assert_eq!(check_quality(&[early], &scores()), Vec::<String>::new());
    }

    #[test]
    fn the_json_names_every_count_the_tests_read() {
        let mut s = balanced();
        s.reconciled = true;
        let v = serde_json::to_value(&s).unwrap();
        for key in ["produced", "enriched", "invalid", "guard_fallbacks", "sessions", "metrics", "duplicates"] {
            assert!(v[key].is_u64(), "{key} in {v}");
        }
        assert_eq!(v["stores"]["mongo_events_total"], 20);
        assert_eq!(v["reconciled"], true);
    }
}
