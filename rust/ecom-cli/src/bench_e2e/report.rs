//! A run's numbers per part and stage, and the designs side by side.
use super::*;
use crate::bench::pct;

impl Report {
    /// The samples of each part, by produce time after the first record. A part ends half a
    /// record's interval before its planned end: its last record is due one interval before,
    /// the next part's first at the end.
    pub(super) fn per_part<'a>(&'a self, parts: &'a [Part]) -> Vec<(&'a Part, Vec<Sample>)> {
        let mut bounds = Vec::new();
        let (mut planned, mut at) = (0.0, 0.0);
        for p in parts {
            let end = match p.rate {
                Some(r) => {
                    planned += p.records as f64 / r;
                    planned - 0.5 / r
                }
                None => f64::INFINITY,
            };
            bounds.push((p, at, end));
            at = end;
        }
        bounds
            .into_iter()
            .map(|(p, from, to)| {
                let s = self
                    .samples
                    .iter()
                    .filter(|s| {
                        let t = (s.produced - self.first_produced) as f64 / 1000.0;
                        t >= from && t < to
                    })
                    .copied()
                    .collect();
                (p, s)
            })
            .collect()
    }

    pub(super) fn stage(samples: &[Sample], stage: usize) -> Vec<i64> {
        let mut v: Vec<i64> = samples.iter().filter_map(|s| s.spans[stage]).collect();
        v.sort_unstable();
        v
    }

    /// Whether a rate step kept up all the way to the stores: the median searchable lag of its
    /// last fifth within 10 s and at most 1 s + 25 % above its first fifth's (a queue growing
    /// anywhere on the path shows as a lag that grows; one inherited from a step before as a lag
    /// past 10 s).
    pub(super) fn sustained(samples: &[Sample]) -> Option<(bool, i64, i64)> {
        let probed: Vec<Sample> = samples.iter().filter(|s| s.spans[4].is_some()).copied().collect();
        let n = probed.len();
        if n < 10 {
            return None;
        }
        let samples = &probed;
        let median = |s: &[Sample]| pct(&Self::stage(s, 4), 0.5).unwrap_or(0);
        let (first, last) = (median(&samples[..n / 5]), median(&samples[n - n / 5..]));
        Some((last <= SUSTAINED_MAX_LAG_MS && last - first <= 1_000 + first / 4, first, last))
    }

    /// Prints the report; false when the counts do not reconcile.
    pub(super) fn print(&self, a: &E2eBench, parts: &[Part], run: &Run) -> bool {
        let per_part = self.per_part(parts);
        let lost = self.produced as i64 - (self.enriched + self.invalid) as i64;
        let dup = self.enriched - self.distinct_enriched;
        let reconciled = lost == 0
            && dup == 0
            && self.es_events == self.distinct_enriched
            && self.mongo_events == self.distinct_enriched
            && self.es_invalid == self.invalid
            && self.mongo_invalid == self.invalid
            && self.sink_deadletters == 0;
        if a.json {
            let rows: Vec<Value> = per_part
                .iter()
                .filter(|(p, _)| p.measured)
                .map(|(p, s)| {
                    let stages: serde_json::Map<String, Value> = STAGES
                        .iter()
                        .enumerate()
                        .map(|(i, name)| {
                            let v = Self::stage(s, i);
                            (name.to_string(), json!({"p50_ms": pct(&v, 0.5), "p99_ms": pct(&v, 0.99), "p999_ms": pct(&v, 0.999), "samples": v.len()}))
                        })
                        .collect();
                    json!({"part": p.label, "rate": p.rate, "records": p.records, "stages": stages,
                           "sustained": Self::sustained(s).map(|x| x.0)})
                })
                .collect();
            println!(
                "{}",
                json!({"design": run.name, "job_args": run.job_args, "sink_args": run.sink_args, "parts": rows, "produced": self.produced, "enriched": self.enriched, "invalid": self.invalid,
                       "es_events": self.es_events, "mongo_events": self.mongo_events,
                       "es_invalid": self.es_invalid, "mongo_invalid": self.mongo_invalid,
                       "sink_deadletters": self.sink_deadletters, "lost": lost, "duplicated": dup,
                       "fallbacks": FALLBACKS.iter().zip(self.fallbacks).map(|(f, n)| (f.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
                       "reconciled": reconciled, "burst_events_per_s": self.burst_rate(parts),
                       "job_restarts": self.job_restarts,
                       "killed": self.killed.iter().map(|(n, s)| json!({"process": n, "after_s": s})).collect::<Vec<_>>(),
                       "peak_rss_mb": self.peak_rss_mb.iter().map(|(n, m)| (n.to_string(), json!(m))).collect::<serde_json::Map<_, _>>()})
            );
            return reconciled;
        }
        println!(
            "ecom bench e2e, design {}: {} records ({} s warm-up left out), job parallelism {}{}",
            run.name,
            self.produced,
            a.warmup_seconds,
            a.job_parallelism(),
            match (run.job_args.is_empty(), run.sink_args.is_empty()) {
                (true, true) => String::new(),
                _ => format!("; job {:?}, sink {:?}", run.job_args.join(" "), run.sink_args.join(" ")),
            }
        );
        println!();
        println!("latency from produced_at, ms: p50 / p99 / p99.9");
        print!("{:<22}", "part");
        for s in STAGES {
            print!(" {s:>20}");
        }
        println!("  {:>9}", "sustained");
        for (p, s) in per_part.iter().filter(|(p, _)| p.measured) {
            print!("{:<22}", p.label);
            for i in 0..STAGES.len() {
                let v = Self::stage(s, i);
                let cell = match (pct(&v, 0.5), pct(&v, 0.99), pct(&v, 0.999)) {
                    (Some(a), Some(b), Some(c)) => format!("{a} / {b} / {c}"),
                    _ => "-".into(),
                };
                print!(" {cell:>20}");
            }
            let sustained = match (p.rate, Self::sustained(s)) {
                (None, _) => "-".to_string(),
                (Some(_), Some((ok, first, last))) => format!("{} ({first}→{last})", if ok { "yes" } else { "no" }),
                (Some(_), None) => "?".into(),
            };
            println!("  {sustained:>9}");
        }
        let best = self.best_sustained(parts);
        println!(
            "(ingested, enriched: the job's stamps; visible: read by a read_committed consumer, after the checkpoint that"
        );
        println!(
            " commits it; sink write: the sink's clock as it built the write; searchable: found by a search, asked every"
        );
        println!(
            " {PROBE_EVERY_MS} ms for one enriched event in {}; sustained: the step's searchable lag, median of its last fifth against its",
            a.probe_every
        );
        println!(" first (ms): within 10 s and at most 1 s + 25 % above the first)");
        println!();
        match best {
            Some(r) => println!("highest sustained rate of the ladder: {r:.0} records/s"),
            None => println!("highest sustained rate of the ladder: none of the steps"),
        }
        if let Some(rate) = self.burst_rate(parts) {
            println!(
                "full speed: {rate:.0} events/s into the stores (documents written from the burst's start to the last write)"
            );
        }
        println!();
        println!("CPU per 1,000 records, ms (user + system; bench: this process, the generator and the reader):");
        let measured = parts.iter().zip(&self.cpu).filter(|(p, _)| p.measured);
        crate::bench::print_cpu_per_k(
            "part",
            21,
            measured.map(|(p, cpu)| (p.label.as_str(), p.records, cpu.as_slice())),
        );
        println!("(the full-speed part runs until the stores hold every record)");
        println!(
            "peak memory (VmHWM, MB; serve and sink since this run started, the rest since they started): {}",
            self.peak_rss_mb.iter().map(|(n, m)| format!("{n} {m:.0}")).collect::<Vec<_>>().join(", ")
        );
        println!();
        println!("produced                    {:>9}", self.produced);
        println!(
            "enriched + invalid          {:>9}   ({} + {}; lost {lost})",
            self.enriched + self.invalid,
            self.enriched,
            self.invalid
        );
        println!("duplicated enriched         {:>9}", dup);
        println!("Elasticsearch events        {:>9}   dead letters {}", self.es_events, self.es_invalid);
        println!("MongoDB events              {:>9}   dead letters {}", self.mongo_events, self.mongo_invalid);
        println!("sink dead letters           {:>9}", self.sink_deadletters);
        println!(
            "serve fallbacks             {:>9}   (guard / recommend / score: {} / {} / {} events)",
            self.fallbacks.iter().sum::<u64>(),
            self.fallbacks[0],
            self.fallbacks[1],
            self.fallbacks[2]
        );
        println!("Flink job restarts          {:>9}", self.job_restarts);
        for (name, after) in &self.killed {
            println!("killed (SIGKILL)            {name:>9}   {after} s after the first record");
        }
        println!("reconciled: {}", if reconciled { "yes" } else { "no" });
        reconciled
    }

    /// The highest rate of the ladder whose backlog stayed bounded.
    pub(super) fn best_sustained(&self, parts: &[Part]) -> Option<f64> {
        self.per_part(parts)
            .iter()
            .filter(|(p, s)| p.measured && p.rate.is_some() && Self::sustained(s).is_some_and(|x| x.0))
            .filter_map(|(p, _)| p.rate)
            .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))))
    }

    /// CPU ms per 1,000 records over every process, per part.
    pub(super) fn cpu_per_k(&self, parts: &[Part]) -> Vec<f64> {
        parts
            .iter()
            .zip(&self.cpu)
            .map(|(p, cpu)| cpu.iter().map(|(_, s)| s * 1000.0 / (p.records.max(1) as f64 / 1000.0)).sum())
            .collect()
    }

    pub(super) fn burst_rate(&self, parts: &[Part]) -> Option<f64> {
        parts.last().filter(|p| p.rate.is_none())?;
        self.burst.filter(|(_, ms)| *ms > 0).map(|(docs, ms)| docs as f64 * 1000.0 / ms as f64)
    }
}

/// The designs next to each other: per measured part, p50 / p99 of produced → enriched and
/// produced → searchable and the CPU per 1,000 records; then the rates.
pub(super) fn side_by_side(parts: &[Part], reports: &[(Run, Report, bool)]) {
    let cell = |v: &[i64]| match (pct(v, 0.5), pct(v, 0.99)) {
        (Some(a), Some(b)) => format!("{a} / {b}"),
        _ => "-".into(),
    };
    println!();
    println!("side by side (p50 / p99 ms from produced_at; CPU: ms per 1,000 records over all processes)");
    let w = reports.iter().map(|(r, _, _)| r.name.len()).max().unwrap_or(0).max(8);
    println!("{:<22} {:<w$} {:>18} {:>18} {:>10}", "part", "design", "enriched", "searchable", "CPU");
    let per: Vec<_> = reports.iter().map(|(d, r, _)| (d, r.per_part(parts), r.cpu_per_k(parts))).collect();
    for (i, p) in parts.iter().enumerate().filter(|(_, p)| p.measured) {
        for (d, pp, cpu) in &per {
            let s = &pp[i].1;
            println!(
                "{:<22} {:<w$} {:>18} {:>18} {:>10.0}",
                p.label,
                d.name,
                cell(&Report::stage(s, 1)),
                cell(&Report::stage(s, 4)),
                cpu[i]
            );
        }
    }
    for (d, r, _) in reports {
        println!(
            "{:<w$} highest sustained rate {:>8}   full speed into the stores {:>8} events/s",
            d.name,
            r.best_sustained(parts).map_or("none".into(), |x| format!("{x:.0}/s")),
            r.burst_rate(parts).map_or("-".into(), |x| format!("{x:.0}"))
        );
    }
}
