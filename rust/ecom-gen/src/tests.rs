//! Unit tests of the generator: the same seed gives the same records, every malformed record fails
//! for its label, event-time order and its bounds, funnel, personas and oracle plausible.
use super::*;
use ecom_proto::v1::{Anomaly, EventKind};
use prost::Message;
use std::collections::{BTreeMap, HashMap, HashSet};

fn cfg(seed: u64, events: u64) -> GenConfig {
    GenConfig { events, seed, ..Default::default() }
}

fn run(c: GenConfig) -> (Vec<GenRecord>, Vec<TruthRecord>) {
    let mut g = Generator::new(c);
    let recs: Vec<GenRecord> = g.by_ref().collect();
    (recs, g.take_truth())
}

#[test]
fn same_seed_same_records_and_truth() {
    let a = run(cfg(7, 5_000));
    let b = run(cfg(7, 5_000));
    let c = run(cfg(8, 5_000));
    assert_eq!(a.0.len(), 5_000);
    assert_eq!(a, b);
    assert_ne!(a.0, c.0);
}

/// The record's value as a producer whose clock reads `now` sends it.
fn produced(r: &GenRecord, now: i64) -> Vec<u8> {
    match (&r.payload, r.clock_lead_ms) {
        (Payload::Event(e), Some(lead)) => Event { event_time_ms: now + lead, ..e.clone() }.encode_to_vec(),
        (Payload::Event(e), None) => e.encode_to_vec(),
        (Payload::Bytes(b), _) => b.clone(),
    }
}

#[test]
fn every_malformed_record_fails_validation_for_its_label() {
    let now = 1_767_225_600_000 + 30 * 86_400_000;
    let c = GenConfig {
        malformed_rate: 0.1,
        duplicate_rate: 0.01,
        late_rate: 0.01,
        hostile_rate: 0.01,
        max_request_bytes: 100_000,
        ..cfg(1, 20_000)
    };
    let (recs, truth) = run(c);
    let mut by_reason: BTreeMap<i32, usize> = BTreeMap::new();
    let mut hostile: BTreeMap<malformed::Hostile, usize> = BTreeMap::new();
    // Each record alone through the validator, then the survivors in order through the
    // stream rules, as the job applies them, read at `now`.
    let mut stream = ecom_core::ReferenceCheck::new();
    for r in &recs {
        let bytes = produced(r, now);
        let got = ecom_core::validate_bytes(&bytes, now).and_then(|e| stream.check(&e, now)).err().map(|x| x.reason);
        assert_eq!(got, r.expected_reject, "record {}: {:?}", r.sequence, r.hostile);
        if let Some(reason) = r.expected_reject {
            *by_reason.entry(reason as i32).or_default() += 1;
        }
        if let Some(h) = r.hostile {
            *hostile.entry(h).or_default() += 1;
        }
    }
    assert_eq!(hostile.len(), malformed::Hostile::ALL.len(), "{hostile:?}");
    // Every kind appears, and each has its label in the truth.
    let mut kinds: HashSet<i32> = malformed::KINDS.iter().map(|k| *k as i32).collect();
    kinds.extend([RejectReason::Duplicate as i32, RejectReason::Late as i32]);
    // Valid and labelled hostile records go through the same rules: none is mislabelled.
    assert_eq!(by_reason.keys().copied().collect::<HashSet<_>>(), kinds);
    let labels = truth.iter().filter(|t| matches!(t.record, Some(truth_record::Record::Malformed(_)))).count();
    assert_eq!(labels, by_reason.values().sum::<usize>());
}

#[test]
fn records_leave_in_event_time_order_except_the_delayed_ones() {
    let (recs, _) = run(GenConfig { malformed_rate: 0.0, ..cfg(3, 20_000) });
    let times: Vec<i64> = recs
        .iter()
        .map(|r| match &r.payload {
            Payload::Event(e) => e.event_time_ms,
            Payload::Bytes(_) => unreachable!("no malformed records asked for"),
        })
        .collect();
    let backwards = times.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(backwards > 0, "some records are out of order on purpose");
    assert!(backwards < 20_000 / 50, "{backwards} out-of-order steps is more than the ~1% asked for");
}

#[test]
fn funnel_anomalies_and_oracle_are_plausible() {
    let (recs, truth) = run(cfg(11, 200_000));
    let mut kinds: BTreeMap<i32, usize> = BTreeMap::new();
    for r in &recs {
        if let Payload::Event(e) = &r.payload {
            *kinds.entry(e.kind).or_default() += 1;
        }
    }
    let n = |k: EventKind| kinds.get(&(k as i32)).copied().unwrap_or(0);
    assert!(n(EventKind::ProductView) > n(EventKind::AddToCart));
    assert!(n(EventKind::AddToCart) > n(EventKind::CheckoutStart));
    assert!(n(EventKind::CheckoutStart) > 0 && n(EventKind::Purchase) > 0);
    let sessions: Vec<&SessionTruth> = truth
        .iter()
        .filter_map(|t| match &t.record {
            Some(truth_record::Record::Session(s)) => Some(s),
            _ => None,
        })
        .collect();
    let normal: Vec<_> = sessions.iter().filter(|s| s.anomaly == 0 && !s.truncated).collect();
    let rate = normal.iter().filter(|s| s.purchased).count() as f64 / normal.len() as f64;
    assert!((0.02..0.15).contains(&rate), "session conversion {rate}");
    for a in [
        Anomaly::Crawler,
        Anomaly::HeadlessBot,
        Anomaly::CredentialStuffing,
        Anomaly::CardTesting,
        Anomaly::CartAbandonStorm,
    ] {
        assert!(sessions.iter().any(|s| s.anomaly == a as i32), "{a:?} missing in 200k events");
    }
    let auc = oracle_auc_of(truth.iter().filter_map(oracle_point)).unwrap();
    eprintln!("sessions {} conversion {rate:.4} oracle AUC {auc:.4}", normal.len());
    assert!((0.75..0.97).contains(&auc), "oracle AUC {auc}");
    let personas: HashSet<&str> = normal.iter().map(|s| s.persona.as_str()).collect();
    assert_eq!(personas.len(), persona::PERSONAS.len());
}

#[test]
fn every_persona_converts_and_prices_inside_its_band() {
    let (recs, truth) = run(cfg(11, 200_000));
    let mut persona_of: HashMap<&str, &'static persona::Persona> = HashMap::new();
    let mut conv: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for t in &truth {
        if let Some(truth_record::Record::Session(s)) = &t.record {
            if s.anomaly == 0 && !s.truncated {
                let p = persona::PERSONAS.iter().find(|p| p.name == s.persona).expect("a known persona");
                persona_of.insert(&s.session_id, p);
                let c = conv.entry(p.name).or_default();
                c.0 += 1;
                c.1 += u64::from(s.purchased);
            }
        }
    }
    let mut prices: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut funnel: BTreeMap<(&str, i32), u64> = BTreeMap::new();
    for r in &recs {
        let Payload::Event(e) = &r.payload else { continue };
        let Some(p) = persona_of.get(e.session_id.as_str()) else { continue };
        *funnel.entry((p.name, e.kind)).or_default() += 1;
        if e.kind == EventKind::ProductView as i32 {
            prices.entry(p.name).or_default().push(e.unit_price_cents.expect("views carry the price"));
        }
    }
    for p in persona::PERSONAS {
        let (n, bought) = conv[p.name];
        let rate = bought as f64 / n as f64;
        let (lo, hi) = p.conversion_band;
        assert!((lo..=hi).contains(&rate), "{}: conversion {rate:.4} outside {lo}..{hi} ({n} sessions)", p.name);
        let v = prices.get_mut(p.name).expect("every persona views products");
        v.sort_unstable();
        let median = v[v.len() / 2];
        let (lo, hi) = p.view_price_band_cents;
        assert!((lo..=hi).contains(&median), "{}: median viewed price {median} outside {lo}..{hi}", p.name);
        let k = |kind: EventKind| funnel.get(&(p.name, kind as i32)).copied().unwrap_or(0);
        assert!(
            k(EventKind::ProductView) > k(EventKind::AddToCart)
                && k(EventKind::AddToCart) > k(EventKind::CheckoutStart),
            "{}: the funnel narrows from views to carts to checkouts",
            p.name
        );
    }
}

#[test]
fn out_of_order_records_stay_inside_the_watermark_bound() {
    // Many delays, starting at night when events are sparse and gaps longest; then the
    // demo's quiet shop (600 sessions/h at peak), where the next event is often minutes
    // ahead of a delayed one.
    for peak in [GenConfig::default().peak_sessions_per_hour, 600.0, 60.0] {
        let c = GenConfig {
            out_of_order_rate: 0.2,
            malformed_rate: 0.0,
            peak_sessions_per_hour: peak,
            start_ms: GenConfig::default().start_ms + 3 * 3_600_000,
            ..cfg(5, 50_000)
        };
        let (recs, _) = run(c);
        let mut stream = ecom_core::ReferenceCheck::new();
        for r in &recs {
            let Payload::Event(e) = &r.payload else { unreachable!("no malformed records asked for") };
            stream.check(e, i64::MAX / 2).unwrap_or_else(|x| panic!("{peak} sessions/h, record {}: {x}", r.sequence));
        }
    }
}

#[test]
fn the_feature_schema_knows_the_shop() {
    let cats: Vec<&str> = catalog::CATEGORIES.iter().map(|c| c.name).collect();
    assert_eq!(cats, ecom_core::features::CATEGORIES);
    let channels: Vec<&str> = persona::CHANNELS.iter().map(|c| c.0).collect();
    assert_eq!(channels, ecom_core::features::CHANNELS);
}

#[test]
fn the_decision_prefix_holds_no_checkout_or_purchase() {
    let (recs, truth) = run(GenConfig { malformed_rate: 0.0, out_of_order_rate: 0.0, ..cfg(13, 30_000) });
    let mut by_session: HashMap<&str, Vec<&Event>> = HashMap::new();
    for r in &recs {
        if let Payload::Event(e) = &r.payload {
            by_session.entry(e.session_id.as_str()).or_default().push(e);
        }
    }
    let mut checked = 0;
    for t in &truth {
        let Some(truth_record::Record::Session(s)) = &t.record else { continue };
        if s.anomaly != 0 || s.truncated {
            continue;
        }
        let events = &by_session[s.session_id.as_str()];
        let prefix = &events[..s.decision_events as usize];
        assert!(!prefix.is_empty());
        assert!(prefix
            .iter()
            .all(|e| e.kind != EventKind::CheckoutStart as i32 && e.kind != EventKind::Purchase as i32));
        checked += 1;
    }
    assert!(checked > 1_000);
}

/// The sessions of a run's truth, by id.
fn sessions(truth: &[TruthRecord]) -> HashMap<String, ecom_proto::v1::SessionTruth> {
    truth
        .iter()
        .filter_map(|t| match &t.record {
            Some(ecom_proto::v1::truth_record::Record::Session(s)) if s.anomaly == Anomaly::None as i32 => {
                Some((s.session_id.clone(), s.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn drift_moves_purchases_after_its_record_and_nothing_before() {
    let base = sessions(&run(cfg(11, 60_000)).1);
    let drifted = sessions(
        &run(GenConfig {
            drift: Some(Drift { after_records: 20_000, decision_logit: -1.0, views_factor: 1.0 }),
            ..cfg(11, 60_000)
        })
        .1,
    );
    // The sessions begun before the shift are the same sessions with the same outcomes. After
    // it the streams part (a different purchase draws other event ids), so the rest is compared
    // as a whole: drawn from the same behaviour, it buys less.
    let same: Vec<&String> = drifted
        .iter()
        .filter(|(id, d)| base.get(*id).is_some_and(|b| b.purchase_probability == d.purchase_probability))
        .map(|(id, _)| id)
        .collect();
    for id in &same {
        assert_eq!(drifted[*id].purchased, base[*id].purchased, "{id}");
    }
    let mean = |m: &HashMap<String, ecom_proto::v1::SessionTruth>| {
        let rest: Vec<f64> =
            m.iter().filter(|(id, _)| !same.contains(id)).map(|(_, s)| s.purchase_probability).collect();
        (rest.len(), rest.iter().sum::<f64>() / rest.len() as f64)
    };
    let ((n_base, p_base), (n_drift, p_drift)) = (mean(&base), mean(&drifted));
    assert!(same.len() > 500 && n_base > 500 && n_drift > 500, "{} same, {n_base} / {n_drift} after", same.len());
    assert!(p_drift < 0.75 * p_base, "mean purchase probability after the shift {p_drift} vs {p_base}");
}

#[test]
fn a_views_drift_lengthens_the_sessions_after_it() {
    let run_with = |views_factor: f64| {
        sessions(
            &run(GenConfig {
                drift: Some(Drift { after_records: 20_000, decision_logit: 0.0, views_factor }),
                ..cfg(12, 60_000)
            })
            .1,
        )
    };
    let (base, drifted) = (run_with(1.0), run_with(2.0));
    // The sessions that differ from the other run's are the ones after the shift.
    type Truths = HashMap<String, ecom_proto::v1::SessionTruth>;
    let mean_rest = |m: &Truths, other: &Truths| {
        let rest: Vec<f64> = m
            .iter()
            .filter(|(id, s)| other.get(*id).is_none_or(|o| o.events != s.events))
            .map(|(_, s)| f64::from(s.events))
            .collect();
        (rest.len(), rest.iter().sum::<f64>() / rest.len().max(1) as f64)
    };
    let ((n_base, e_base), (n_drift, e_drift)) = (mean_rest(&base, &drifted), mean_rest(&drifted, &base));
    assert!(n_base > 500 && n_drift > 500, "{n_base} / {n_drift}");
    assert!(e_drift > 1.3 * e_base, "events per session after the shift {e_drift} vs {e_base}");
}

/// The inferable oracle is exact Bayes over the generator's own model, so it is calibrated: the
/// purchase rate in each tenth of its probabilities matches their mean. Knowing less than the
/// observable oracle (the persona and the history before the data), it ranks worse.
#[test]
fn the_oracles_are_calibrated_and_ordered() {
    let (_, truth) = run(GenConfig { malformed_rate: 0.0, ..cfg(5, 1_500_000) });
    let normal: Vec<SessionTruth> = sessions(&truth).into_values().filter(|s| s.anomaly == 0 && !s.truncated).collect();
    let y: Vec<bool> = normal.iter().map(|s| s.purchased).collect();
    let auc = |p: fn(&SessionTruth) -> f64| {
        let scores: Vec<f64> = normal.iter().map(p).collect();
        ecom_core::metrics::roc_auc(&scores, &y).expect("both classes")
    };
    let (oracle, observable, inferable) =
        (auc(|s| s.purchase_probability), auc(|s| s.observable_probability), auc(|s| s.inferable_probability));
    eprintln!("{} sessions: oracle {oracle:.4} observable {observable:.4} inferable {inferable:.4}", normal.len());
    assert!(inferable < observable && observable < oracle, "{inferable} {observable} {oracle}");
    assert!(inferable > observable - 0.05, "inferable {inferable} far below observable {observable}");
    for (name, p) in [
        ("observable", (|s: &SessionTruth| s.observable_probability) as fn(&SessionTruth) -> f64),
        ("inferable", |s: &SessionTruth| s.inferable_probability),
    ] {
        let mut rows: Vec<(f64, bool)> = normal.iter().map(|s| (p(s), s.purchased)).collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (i, tenth) in rows.chunks(rows.len().div_ceil(10)).enumerate() {
            let n = tenth.len() as f64;
            let predicted = tenth.iter().map(|r| r.0).sum::<f64>() / n;
            let observed = tenth.iter().filter(|r| r.1).count() as f64 / n;
            // Four standard errors of the observed rate, and at least half a point.
            let tolerance = (4.0 * (predicted * (1.0 - predicted) / n).sqrt()).max(0.005);
            eprintln!("{name} tenth {i}: predicted {predicted:.4} observed {observed:.4} ± {tolerance:.4}");
            assert!((predicted - observed).abs() < tolerance, "{name} tenth {i}: {predicted} vs {observed}");
        }
    }
}
