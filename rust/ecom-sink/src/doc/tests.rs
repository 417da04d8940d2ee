//! Unit tests of the documents and templates: every field where the stores expect it, no raw IP, an event survives its document, daily index names.
use super::*;

#[test]
fn daily_index_names() {
    for t in [0, 1_709_164_800_000, 1_735_603_200_000, -86_400_000] {
        assert_eq!(daily_index_day("ecom-events", &daily_index("ecom-events", t)), Some(t));
    }
    assert_eq!(daily_index_day("ecom-events", "ecom-events-2024.13.01"), None);
    assert_eq!(daily_index_day("ecom-events", "ecom-events-sessions-2024.01.01"), None);
    assert_eq!(daily_index_day("ecom-events", "ecom-eventsx-2024.01.01"), None);
    assert_eq!(daily_index("ecom-events", 0), "ecom-events-1970.01.01");
    assert_eq!(daily_index("ecom-events", 1_709_164_800_000), "ecom-events-2024.02.29");
    assert_eq!(daily_index("ecom-events", 1_735_689_599_999), "ecom-events-2024.12.31");
}

#[test]
fn doc_has_ids_and_no_raw_ip() {
    let e = EnrichedEvent {
        event: Some(ecom_proto::v1::Event { event_id: "e1".into(), ip: String::new(), kind: 3, ..Default::default() }),
        ip_hash: "ab".into(),
        ..Default::default()
    };
    let d = to_doc(&e, 5);
    assert_eq!(d["event_id"], "e1");
    assert_eq!(d["kind"], "product_view");
    assert!(d.get("ip").is_none());
    assert_eq!(d["indexed_at"], 5);
}

/// Every field of the message, named: a field added to the proto fails to compile here
/// until someone decides whether the document carries it.
fn full_enriched_event() -> EnrichedEvent {
    use ecom_proto::v1::{ShapReason, SimilarProduct, SourceOffset, UserHistory};
    EnrichedEvent {
        event: Some(Event { event_id: "e1".into(), event_time_ms: 1_767_225_600_000, kind: 4, ..Default::default() }),
        ip_hash: "ab".into(),
        geo_bucket: "DE".into(),
        category: "sofas".into(),
        price_cents: 129_900,
        material: "oak".into(),
        style: "nordic".into(),
        verdict: 2,
        verdict_reasons: vec!["ip_rate: 130 events/min from this IP".into(), "crawler_agent".into()],
        guard_fallback: false,
        purchase_probability: Some(0.25),
        model_version: "v7".into(),
        shap_reasons: vec![ShapReason { feature: "cart_adds".into(), value: 2.0, contribution: 0.5 }],
        lsh_signature: vec![11, 12],
        lsh_buckets: vec![255],
        produced_at_ms: 1,
        ingested_at_ms: 2,
        enriched_at_ms: 3,
        source: Some(SourceOffset { topic: "ecom.events.raw".into(), partition: 1, offset: 9 }),
        session_features: vec![1.5, 2.5],
        feature_schema_hash: "h1".into(),
        catalog_miss: true,
        score_fallback: true,
        scored_at_ms: 4,
        session_tokens: vec!["p:P1".into()],
        recommendations: vec![SimilarProduct { product_id: "P2".into(), similarity: 0.75, sessions: 3 }],
        recommend_fallback: true,
        user: Some(UserHistory { prior_sessions: 2, prior_purchases: 1, last_session_ms: 7 }),
        shadow_probability: Some(0.125),
        shadow_model_version: "v8".into(),
    }
}

#[test]
fn event_doc_carries_the_job_outputs_but_not_its_call_inputs() {
    let d = to_doc(&full_enriched_event(), 5);
    assert_eq!(d["kind"], "add_to_cart");
    assert_eq!(d["verdict"], "flag");
    assert_eq!((d["material"].as_str(), d["style"].as_str()), (Some("oak"), Some("nordic")));
    assert_eq!(d["catalog_miss"], true);
    assert_eq!(d["score_fallback"], true);
    assert_eq!(d["scored_at"], 4);
    assert_eq!(d["feature_schema_hash"], "h1");
    assert_eq!(d["shap_reasons"], json!([{"feature": "cart_adds", "value": 2.0, "contribution": 0.5}]));
    assert_eq!(d["recommendations"], json!([{"product_id": "P2", "similarity": 0.75, "sessions": 3}]));
    assert_eq!(d["recommend_fallback"], true);
    assert_eq!((d["shadow_probability"].as_f64(), d["shadow_model_version"].as_str()), (Some(0.125), Some("v8")));
    assert_eq!((d["user_prior_sessions"].as_u64(), d["user_prior_purchases"].as_u64()), (Some(2), Some(1)));
    assert_eq!(d["lsh_buckets"], json!(["00000000000000ff"]));
    assert_eq!((d["source_topic"].as_str(), d["source_offset"].as_i64()), (Some("ecom.events.raw"), Some(9)));
    assert_eq!(d["verdict_rules"], json!(["ip_rate", "crawler_agent"]));
    assert_eq!(
        d["latency_ms"],
        json!({"produced_to_ingested": 1, "ingested_to_enriched": 1, "enriched_to_indexed": 2, "produced_to_indexed": 4})
    );
    for left_out in ["session_features", "session_tokens", "lsh_signature", "ip"] {
        assert!(d.get(left_out).is_none(), "{left_out} must not be stored");
    }
    let unscored = to_doc(&EnrichedEvent { scored_at_ms: 0, ..full_enriched_event() }, 5);
    assert!(unscored["scored_at"].is_null());
}

fn full_session() -> Session {
    use ecom_proto::v1::{CartLine, CategoryCount, SessionState, UserHistory};
    let mut kind_counts = vec![0; 11];
    kind_counts[3] = 4; // product views
    kind_counts[8] = 1; // purchases
    Session {
        id: "s1@1767225600000".into(),
        session_id: "s1".into(),
        user_id: "u1".into(),
        start_ms: 1_767_225_600_000,
        end_ms: 1_767_225_660_000,
        events: 5,
        purchased: true,
        revenue_cents: 129_900,
        features: vec![0.5, 1.0],
        feature_schema_hash: "h1".into(),
        state: Some(SessionState {
            device: "mobile".into(),
            channel: "web".into(),
            country: "DE".into(),
            campaign: true,
            logged_in: true,
            kind_counts,
            products: vec!["P1".into()],
            category_views: vec![CategoryCount { category: "sofas".into(), views: 4 }],
            cart: vec![CartLine { product_id: "P1".into(), quantity: 1, unit_price_cents: 129_900 }],
            tokens: vec!["p:P1".into()],
            ..Default::default()
        }),
        user: Some(UserHistory { prior_sessions: 2, prior_purchases: 1, last_session_ms: 0 }),
        closed_at_ms: 1_767_227_500_000,
        purchase_probability: Some(0.375),
        model_version: "v7".into(),
        decision_event_id: "e3".into(),
        decision_features: vec![],
        decision_state: Some(SessionState {
            events: 3,
            last_ms: 1_767_225_660_000,
            tokens: vec!["p:P1".into()],
            ..Default::default()
        }),
        bought: vec!["P1".into()],
        shadow_probability: Some(0.5),
        shadow_model_version: "v8".into(),
    }
}

#[test]
fn training_reads_back_what_a_session_document_holds() {
    let s = full_session();
    // Through JSON text, as MongoDB's relaxed extended JSON gives it back.
    let d: serde_json::Value = serde_json::from_str(&session_doc(&s, 1).to_string()).unwrap();
    let back = session_from_doc(&d).unwrap();
    assert_eq!(
        (back.session_id.as_str(), back.start_ms, back.end_ms, back.purchased),
        (s.session_id.as_str(), s.start_ms, s.end_ms, s.purchased)
    );
    assert_eq!((back.decision_state, back.bought), (s.decision_state, s.bought));
    let none = session_doc(&Session { decision_state: None, ..full_session() }, 1);
    assert_eq!(session_from_doc(&none).unwrap().decision_state, None);
}

#[test]
fn decision_features_are_named_only_in_this_builds_schema() {
    let names = ecom_core::features::NAMES;
    let values: Vec<f64> = (0..names.len()).map(|i| i as f64).collect();
    let s = Session {
        feature_schema_hash: ecom_core::features::schema_hash(),
        decision_features: values.clone(),
        ..full_session()
    };
    let d = session_doc(&s, 1);
    assert_eq!(d["decision_features"][names[3]], 3.0);
    assert_eq!(d["decision_features"].as_object().unwrap().len(), names.len());
    // Another schema's positions would be named wrongly: left out.
    assert!(session_doc(&Session { feature_schema_hash: "other".into(), ..s }, 1)["decision_features"].is_null());
}

#[test]
fn session_doc_names_its_counts_and_keeps_features_for_training() {
    let d = session_doc(&full_session(), 7);
    assert_eq!(d["id"], "s1@1767225600000");
    assert_eq!(d["duration_ms"], 60_000);
    assert_eq!(d["purchased"], true);
    assert_eq!(d["revenue_cents"], 129_900);
    assert_eq!(d["kind_counts"]["product_view"], 4);
    assert_eq!(d["kind_counts"]["purchase"], 1);
    assert_eq!(d["kind_counts"]["login_failed"], 0);
    assert_eq!(d["kind_counts"].as_object().unwrap().len(), 10);
    assert_eq!(d["category_views"], json!([{"category": "sofas", "views": 4}]));
    assert_eq!(d["cart"], json!([{"product_id": "P1", "quantity": 1, "unit_price_cents": 129_900}]));
    assert_eq!((d["device"].as_str(), d["campaign"].as_bool()), (Some("mobile"), Some(true)));
    assert_eq!(d["prior_sessions"], 2);
    assert!(d["last_session_ms"].is_null(), "no earlier session is null, not 1970");
    assert_eq!(d["features"], json!([0.5, 1.0]));
    assert_eq!(d["indexed_at"], 7);
    assert_eq!((d["purchase_probability"].as_f64(), d["model_version"].as_str()), (Some(0.375), Some("v7")));
    assert_eq!((d["shadow_probability"].as_f64(), d["shadow_model_version"].as_str()), (Some(0.5), Some("v8")));
    assert!(d.get("tokens").is_none());
    // A session with no state or user still encodes (counts 0).
    let bare = session_doc(&Session { id: "x".into(), ..Default::default() }, 7);
    assert_eq!(bare["kind_counts"]["purchase"], 0);
    assert_eq!(bare["prior_sessions"], 0);
    assert!(bare["purchase_probability"].is_null(), "not scored is null, not 0");
    assert!(bare["shadow_probability"].is_null(), "no shadow is null, not 0");
}

fn full_metrics() -> WindowMetrics {
    WindowMetrics {
        id: "1767225600000/sofas".into(),
        window_start_ms: 1_767_225_600_000,
        window_end_ms: 1_767_225_660_000,
        category: "sofas".into(),
        views: 12,
        carts: 3,
        purchases: 1,
        revenue_cents: 80_000,
        conversion: 1.0 / 12.0,
        epsilon_spent: 2.0,
        mechanism: "discrete_laplace".into(),
        emitted_at_ms: 1_767_225_661_000,
    }
}

#[test]
fn metrics_doc_is_the_record() {
    let d = metrics_doc(&full_metrics(), 9);
    assert_eq!(
        d,
        json!({
            "id": "1767225600000/sofas", "window_start_ms": 1_767_225_600_000_i64,
            "window_end_ms": 1_767_225_660_000_i64, "category": "sofas", "views": 12, "carts": 3,
            "purchases": 1, "revenue_cents": 80_000, "conversion": 1.0 / 12.0, "epsilon_spent": 2.0,
            "mechanism": "discrete_laplace", "emitted_at_ms": 1_767_225_661_000_i64, "indexed_at": 9,
        })
    );
}

/// Every time field of a document (`*_ms`, `*_at`, `event_time`) is a date in its template,
/// and every number the template does not name is not a silently-dynamic float.
#[test]
fn templates_map_every_time_field_as_a_date() {
    let cases = [
        (to_doc(&full_enriched_event(), 5), event_index_template("ecom-events")),
        (session_doc(&full_session(), 5), session_index_template("ecom-sessions")),
        (metrics_doc(&full_metrics(), 5), metrics_index_template("ecom-metrics")),
        (
            invalid_doc(&InvalidEvent { ingested_at_ms: 1, ..Default::default() }, 5),
            invalid_index_template("ecom-invalid"),
        ),
    ];
    for (d, t) in cases {
        let props = &t["template"]["mappings"]["properties"];
        for (k, v) in d.as_object().unwrap() {
            let is_time = k == "event_time"
                || k.ends_with("_at")
                || (k.ends_with("_ms") && k != "duration_ms" && k != "latency_ms");
            if is_time {
                assert_eq!(props[k]["type"], "date", "{k} in {}", t["index_patterns"]);
            }
            if v.is_f64() || v.as_array().is_some_and(|a| a.iter().any(Value::is_f64)) {
                assert_eq!(props[k]["type"], "double", "{k} in {}", t["index_patterns"]);
            }
        }
    }
    assert_eq!(session_index_template("ecom-sessions")["index_patterns"], json!(["ecom-sessions-*"]));
    assert_eq!(metrics_index_template("ecom-metrics")["index_patterns"], json!(["ecom-metrics-*"]));
}

#[test]
fn an_event_survives_its_document() {
    let g = ecom_gen::Generator::new(ecom_gen::GenConfig { events: 3_000, seed: 2, ..Default::default() });
    let mut n = 0;
    for r in g {
        if let (ecom_gen::Payload::Event(ev), None) = (&r.payload, r.expected_reject) {
            let back =
                event_from_doc(&to_doc(&EnrichedEvent { event: Some(ev.clone()), ..Default::default() }, 1)).unwrap();
            assert_eq!(back, Event { ip: String::new(), ..ev.clone() });
            n += 1;
        }
    }
    assert!(n > 2_000);
    assert!(event_from_doc(&json!({"event_id": "x", "kind": "teleport", "event_time": 1})).is_err());
}
