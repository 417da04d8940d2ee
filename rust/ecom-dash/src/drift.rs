//! The feature drift panel (`usermeta.offline: "drift"`): each window's sessions binned at their
//! decision point (`decision_features.<name>` of ecom-sessions-*) against the serving version's
//! training bins (`reference.json`), as one PSI per window and feature (ecom_model::drift).
use ecom_model::drift::{Reference, MIN_SESSIONS, PSI_FLAG, PSI_WATCH};
use serde_json::{json, Value};

/// The panel's search body with, under its `windows` aggregation, one range aggregation per
/// reference feature (`f0`, `f1`, …) over the reference's bins.
pub(crate) fn body(mut body: Value, reference: &Reference) -> Value {
    for (i, f) in reference.features.iter().enumerate() {
        let mut ranges = Vec::with_capacity(f.edges.len() + 1);
        let mut from: Option<f64> = None;
        for e in &f.edges {
            ranges.push(match from {
                None => json!({"to": e}),
                Some(lo) => json!({"from": lo, "to": e}),
            });
            from = Some(*e);
        }
        ranges.push(match from {
            None => json!({}),
            Some(lo) => json!({"from": lo}),
        });
        body["aggs"]["windows"]["aggs"][format!("f{i}")] =
            json!({"range": {"field": format!("decision_features.{}", f.name), "ranges": ranges}});
    }
    body
}

/// One row per window and feature (`window_start`, `feature`, `psi`, `sessions`: those binned,
/// i.e. with that feature stored; `counted`: at least [`MIN_SESSIONS`] of them), and a headline
/// on the counted rows.
pub(crate) fn rows(windows: &[Value], reference: &Reference, version: &str) -> (Vec<Value>, String) {
    let mut rows = Vec::new();
    let mut worst: Option<(f64, &str, i64)> = None;
    let mut counted_windows = std::collections::BTreeSet::new();
    for w in windows {
        let start = w["key"].as_i64().unwrap_or(0);
        for (i, f) in reference.features.iter().enumerate() {
            let counts: Vec<u64> = w[format!("f{i}")]["buckets"]
                .as_array()
                .map(|b| b.iter().map(|b| b["doc_count"].as_u64().unwrap_or(0)).collect())
                .unwrap_or_default();
            let Some(psi) = f.psi(&counts) else { continue };
            // Sessions stored before the job kept decision features have none: not binned.
            let sessions: u64 = counts.iter().sum();
            let counted = sessions >= MIN_SESSIONS;
            if counted {
                counted_windows.insert(start);
            }
            if counted && worst.is_none_or(|(p, _, _)| psi > p) {
                worst = Some((psi, &f.name, start));
            }
            rows.push(
                json!({"window_start": start, "feature": f.name, "psi": psi, "sessions": sessions, "counted": counted}),
            );
        }
    }
    let headline = match worst {
        None => format!(
            "no window has {MIN_SESSIONS} sessions yet: fewer make PSI read high by chance alone (model {version})"
        ),
        Some((psi, feature, _)) if psi > PSI_FLAG => format!(
            "drift: {feature} PSI {psi:.2} (over {PSI_FLAG}): the sessions no longer look like the training rows of {version}"
        ),
        Some((psi, feature, _)) => format!(
            "{} against the training rows of {version}: largest PSI {psi:.3} ({feature}) over {} windows",
            if psi > PSI_WATCH { "a shift to watch" } else { "no feature drift" },
            counted_windows.len()
        ),
    };
    (rows, headline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecom_model::drift::FeatureReference;

    #[test]
    fn the_bins_become_range_aggregations_and_their_counts_psi() {
        let r = Reference {
            rows: 4,
            features: vec![FeatureReference {
                name: "n".into(),
                edges: vec![1.0, 3.0],
                fractions: vec![0.25, 0.5, 0.25],
            }],
        };
        let b = body(json!({"aggs": {"windows": {"date_histogram": {}}}}), &r);
        assert_eq!(
            b["aggs"]["windows"]["aggs"]["f0"]["range"],
            json!({"field": "decision_features.n", "ranges": [{"to": 1.0}, {"from": 1.0, "to": 3.0}, {"from": 3.0}]})
        );
        let bucket = |n: u64, counts: [u64; 3]| json!({"key": 0, "doc_count": n, "f0": {"buckets": counts.map(|c| json!({"doc_count": c}))}});
        let (rows, headline) = rows(&[bucket(400, [100, 200, 100])], &r, "v1");
        assert!(rows[0]["psi"].as_f64().unwrap().abs() < 1e-9 && rows[0]["counted"] == true);
        assert!(headline.starts_with("no feature drift against the training rows of v1"), "{headline}");
        let (_, headline) = rows_of_shift(&r);
        assert!(headline.starts_with("drift: n PSI"), "{headline}");
        let (rows, headline) = super::rows(&[bucket(20, [20, 0, 0])], &r, "v1");
        assert_eq!(rows[0]["counted"], false);
        assert!(headline.starts_with("no window has 200 sessions"), "{headline}");
    }

    fn rows_of_shift(r: &Reference) -> (Vec<Value>, String) {
        let shifted = json!({"key": 0, "doc_count": 400, "f0": {"buckets": [{"doc_count": 0}, {"doc_count": 40}, {"doc_count": 360}]}});
        rows(&[shifted], r, "v1")
    }
}
