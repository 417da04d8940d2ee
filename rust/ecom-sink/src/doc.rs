//! Encodes the records the sink moves (EnrichedEvent, Session, WindowMetrics) as the JSON
//! documents both stores hold, and the Elasticsearch index templates for them: one shape per
//! kind, in one place.
use anyhow::Context;
use ecom_proto::v1::{EnrichedEvent, Event, EventKind, InvalidEvent, Session, Verdict, WindowMetrics};
use serde_json::{json, Value};

/// A time that is 0 when it never happened (no Score call yet, no earlier session): null in
/// the document, so Kibana shows no 1970 dates.
fn time_or_null(ms: i64) -> Value {
    if ms == 0 {
        Value::Null
    } else {
        ms.into()
    }
}

/// `EVENT_KIND_PRODUCT_VIEW` -> `product_view`: the kind names documents use.
fn kind_name(kind: i32) -> String {
    let name = EventKind::try_from(kind).map(|k| k.as_str_name()).unwrap_or("EVENT_KIND_UNSPECIFIED");
    name.trim_start_matches("EVENT_KIND_").to_ascii_lowercase()
}

/// The document for an enriched event. `indexed_at` is the sink's clock at write time. The
/// session's raw feature vector, its LSH tokens and the event's LSH signature stay out: they
/// are inputs for the job's calls, not something to search.
pub fn to_doc(e: &EnrichedEvent, indexed_at_ms: i64) -> Value {
    let ev = e.event.clone().unwrap_or_default();
    let src = e.source.clone().unwrap_or_default();
    let user = e.user.unwrap_or_default();
    let verdict = Verdict::try_from(e.verdict).map(|v| v.as_str_name()).unwrap_or("VERDICT_UNSPECIFIED");
    let mut d = json!({
        "event_id": ev.event_id,
        "event_time": ev.event_time_ms,
        "user_id": ev.user_id,
        "session_id": ev.session_id,
        "kind": kind_name(ev.kind),
        "product_id": ev.product_id,
        "quantity": ev.quantity,
        "unit_price_cents": ev.unit_price_cents,
        "search_query": ev.search_query,
        "page": ev.page,
        "referrer": ev.referrer,
        "channel": ev.channel,
        "device": ev.device,
        "user_agent": ev.user_agent,
        "country": ev.country,
        "ip_hash": e.ip_hash,
        "geo_bucket": e.geo_bucket,
        "category": e.category,
        "price_cents": e.price_cents,
        "material": e.material,
        "style": e.style,
        "catalog_miss": e.catalog_miss,
        "verdict": verdict.trim_start_matches("VERDICT_").to_ascii_lowercase(),
        "verdict_reasons": e.verdict_reasons,
        "guard_fallback": e.guard_fallback,
        "purchase_probability": e.purchase_probability,
        "model_version": e.model_version,
        "shap_reasons": e.shap_reasons.iter().map(|r| json!({
            "feature": r.feature, "value": r.value, "contribution": r.contribution,
        })).collect::<Vec<_>>(),
        "score_fallback": e.score_fallback,
        "feature_schema_hash": e.feature_schema_hash,
        "recommendations": e.recommendations.iter().map(|r| json!({
            "product_id": r.product_id, "similarity": r.similarity, "sessions": r.sessions,
        })).collect::<Vec<_>>(),
        "recommend_fallback": e.recommend_fallback,
        "lsh_buckets": e.lsh_buckets.iter().map(|b| format!("{b:016x}")).collect::<Vec<_>>(),
        "produced_at": e.produced_at_ms,
        "ingested_at": e.ingested_at_ms,
        "enriched_at": e.enriched_at_ms,
        "scored_at": time_or_null(e.scored_at_ms),
        "indexed_at": indexed_at_ms,
        "source_topic": src.topic,
        "source_partition": src.partition,
        "source_offset": src.offset,
    });
    // Outside the literal: one more field there passes serde_json's macro recursion limit.
    d["user_prior_sessions"] = user.prior_sessions.into();
    d["user_prior_purchases"] = user.prior_purchases.into();
    // Each reason is "rule: detail"; the rule alone is what one counts by.
    d["verdict_rules"] = e
        .verdict_reasons
        .iter()
        .map(|r| r.split_once(':').map_or(r.as_str(), |(rule, _)| rule))
        .collect::<Vec<_>>()
        .into();
    d["latency_ms"] = latencies(e, indexed_at_ms);
    d
}

/// Milliseconds between the pipeline's stamps, stored so Elasticsearch can aggregate them
/// without scripts: produced (Kafka's timestamp of the raw record) → ingested (the job read it)
/// → enriched (the job finished it) → indexed (the sink wrote it). A stage with a missing stamp
/// is null.
fn latencies(e: &EnrichedEvent, indexed_at_ms: i64) -> Value {
    let span = |from: i64, to: i64| if from > 0 && to > 0 { Value::from(to - from) } else { Value::Null };
    json!({
        "produced_to_ingested": span(e.produced_at_ms, e.ingested_at_ms),
        "ingested_to_enriched": span(e.ingested_at_ms, e.enriched_at_ms),
        "enriched_to_indexed": span(e.enriched_at_ms, indexed_at_ms),
        "produced_to_indexed": span(e.produced_at_ms, indexed_at_ms),
    })
}

/// The document for a closed session (`_id` = `Session.id`). Besides the session's own fields
/// it carries what its folded state says about it (device, channel, country, landing, login,
/// events per kind, products, category views, cart), what was known of the user before it, and
/// the purchase probability it was scored with at its decision point (null when none; the live
/// calibration compares it with `purchased`). `features` (in the order of `feature_schema_hash`'s schema) is kept for training, not
/// indexed by Elasticsearch; the state's LSH tokens and running sums stay out.
pub fn session_doc(s: &Session, indexed_at_ms: i64) -> Value {
    let st = s.state.clone().unwrap_or_default();
    let user = s.user.unwrap_or_default();
    // kind_counts is indexed by EventKind number; every named kind gets a count, 0 included.
    let kind_counts: serde_json::Map<String, Value> =
        (1..=10).map(|k| (kind_name(k), st.kind_counts.get(k as usize).copied().unwrap_or(0).into())).collect();
    json!({
        "id": s.id,
        "session_id": s.session_id,
        "user_id": s.user_id,
        "start_ms": s.start_ms,
        "end_ms": s.end_ms,
        "duration_ms": s.end_ms - s.start_ms,
        "events": s.events,
        "purchased": s.purchased,
        "revenue_cents": s.revenue_cents,
        "device": st.device,
        "channel": st.channel,
        "country": st.country,
        "campaign": st.campaign,
        "external_referrer": st.external_referrer,
        "logged_in": st.logged_in,
        "kind_counts": kind_counts,
        "products": st.products,
        "category_views": st.category_views.iter().map(|c| json!({
            "category": c.category, "views": c.views,
        })).collect::<Vec<_>>(),
        "cart": st.cart.iter().map(|l| json!({
            "product_id": l.product_id, "quantity": l.quantity, "unit_price_cents": l.unit_price_cents,
        })).collect::<Vec<_>>(),
        "prior_sessions": user.prior_sessions,
        "prior_purchases": user.prior_purchases,
        "last_session_ms": time_or_null(user.last_session_ms),
        "features": s.features,
        "feature_schema_hash": s.feature_schema_hash,
        "closed_at_ms": s.closed_at_ms,
        "purchase_probability": s.purchase_probability,
        "model_version": s.model_version,
        "indexed_at": indexed_at_ms,
    })
}

/// The document for one window's DP metrics (`_id` = `WindowMetrics.id`): the record as the
/// job released it, noise included.
pub fn metrics_doc(m: &WindowMetrics, indexed_at_ms: i64) -> Value {
    json!({
        "id": m.id,
        "window_start_ms": m.window_start_ms,
        "window_end_ms": m.window_end_ms,
        "category": m.category,
        "views": m.views,
        "carts": m.carts,
        "purchases": m.purchases,
        "revenue_cents": m.revenue_cents,
        "conversion": m.conversion,
        "epsilon_spent": m.epsilon_spent,
        "mechanism": m.mechanism,
        "emitted_at_ms": m.emitted_at_ms,
        "indexed_at": indexed_at_ms,
    })
}

/// The document for a record the job rejected (`_id` = its raw record's position): why, where
/// it came from, and the raw value (base64; at most the job's --max-record-bytes) with the
/// size and SHA-256 of the whole value.
pub fn invalid_doc(e: &InvalidEvent, indexed_at_ms: i64) -> Value {
    use base64::Engine as _;
    let src = e.source.clone().unwrap_or_default();
    json!({
        "reason": e.reason_code,
        "detail": e.detail,
        "source_topic": src.topic,
        "source_partition": src.partition,
        "source_offset": src.offset,
        "ingested_at": time_or_null(e.ingested_at_ms),
        "rejected_at": e.rejected_at_ms,
        "raw_size_bytes": e.raw_size_bytes,
        "raw_sha256": e.raw_sha256,
        "raw_truncated": e.raw_truncated,
        "raw": base64::engine::general_purpose::STANDARD.encode(&e.raw),
        "indexed_at": indexed_at_ms,
    })
}

/// The event back from its document (what `ecom train --from mongodb` reads): the fields
/// `to_doc` took from `Event`. The IP is only stored hashed, so it stays empty.
pub fn event_from_doc(d: &Value) -> anyhow::Result<Event> {
    let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
    let opt_text = |k: &str| d[k].as_str().map(str::to_string);
    let id = text("event_id");
    let kind = d["kind"].as_str().with_context(|| format!("document {id} has no kind"))?;
    let kind = EventKind::from_str_name(&format!("EVENT_KIND_{}", kind.to_ascii_uppercase()))
        .with_context(|| format!("document {id} has an unknown kind {kind:?}"))?;
    Ok(Event {
        event_id: id.clone(),
        event_time_ms: d["event_time"].as_i64().with_context(|| format!("document {id} has no event_time"))?,
        user_id: text("user_id"),
        session_id: text("session_id"),
        kind: kind as i32,
        product_id: opt_text("product_id"),
        quantity: d["quantity"].as_i64().map(|q| q as i32),
        unit_price_cents: d["unit_price_cents"].as_i64(),
        search_query: opt_text("search_query"),
        page: text("page"),
        referrer: text("referrer"),
        channel: text("channel"),
        device: text("device"),
        user_agent: text("user_agent"),
        country: text("country"),
        ..Default::default()
    })
}

/// `prefix-YYYY.MM.DD` for an event time in ms (UTC).
pub fn daily_index(prefix: &str, event_time_ms: i64) -> String {
    let (y, m, d) = civil_from_days(event_time_ms.div_euclid(86_400_000));
    format!("{prefix}-{y:04}.{m:02}.{d:02}")
}

/// The start (ms since epoch, UTC) of the day a daily index named `<prefix>-YYYY.MM.DD` holds;
/// None for any other name.
pub fn daily_index_day(prefix: &str, index: &str) -> Option<i64> {
    let date = index.strip_prefix(prefix)?.strip_prefix('-')?;
    let mut parts = date.split('.');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400_000)
}

/// (year, month, day) to days since 1970-01-01, Howard Hinnant's algorithm.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// An index template for `prefix-*` with `properties`: one shard, no replica (one node
/// locally; raise it on a cluster), and every string a keyword unless a property says
/// otherwise.
fn template(prefix: &str, properties: Value) -> Value {
    let kw = json!({"type": "keyword"});
    json!({
        "index_patterns": [format!("{prefix}-*")],
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "1s"},
            "mappings": {
                "dynamic_templates": [{"strings": {"match_mapping_type": "string", "mapping": kw}}],
                "properties": properties
            }
        },
        "priority": 100
    })
}

fn date() -> Value {
    json!({"type": "date", "format": "epoch_millis"})
}

fn typed(t: &str) -> Value {
    json!({"type": t})
}

/// Index template for the enriched events (`prefix-*`): keywords for ids and codes, dates for
/// timestamps.
pub fn event_index_template(prefix: &str) -> Value {
    let kw = typed("keyword");
    template(
        prefix,
        json!({
            "event_time": date(), "produced_at": date(), "ingested_at": date(),
            "enriched_at": date(), "scored_at": date(), "indexed_at": date(),
            "search_query": {"type": "text", "fields": {"raw": kw}},
            "user_agent": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 512}}},
            "quantity": typed("integer"), "unit_price_cents": typed("long"),
            "price_cents": typed("long"), "purchase_probability": typed("double"),
            "catalog_miss": typed("boolean"), "guard_fallback": typed("boolean"),
            "score_fallback": typed("boolean"), "recommend_fallback": typed("boolean"),
            "user_prior_sessions": typed("integer"), "user_prior_purchases": typed("integer"),
            "shap_reasons": {"properties": {
                "feature": kw, "value": typed("double"), "contribution": typed("double"),
            }},
            "recommendations": {"properties": {
                "product_id": kw, "similarity": typed("double"), "sessions": typed("integer"),
            }},
            "source_partition": typed("integer"), "source_offset": typed("long"),
            "latency_ms": {"properties": {
                "produced_to_ingested": typed("long"), "ingested_to_enriched": typed("long"),
                "enriched_to_indexed": typed("long"), "produced_to_indexed": typed("long"),
            }}
        }),
    )
}

/// Index template for the closed sessions (`prefix-*`, daily by start_ms).
pub fn session_index_template(prefix: &str) -> Value {
    let int = typed("integer");
    let kind_counts: serde_json::Map<String, Value> = (1..=10).map(|k| (kind_name(k), int.clone())).collect();
    template(
        prefix,
        json!({
            "start_ms": date(), "end_ms": date(), "last_session_ms": date(),
            "closed_at_ms": date(), "indexed_at": date(),
            "duration_ms": typed("long"), "events": int, "purchased": typed("boolean"),
            "revenue_cents": typed("long"),
            "campaign": typed("boolean"), "external_referrer": typed("boolean"), "logged_in": typed("boolean"),
            "kind_counts": {"properties": kind_counts},
            "category_views": {"properties": {"category": typed("keyword"), "views": int}},
            "cart": {"properties": {
                "product_id": typed("keyword"), "quantity": int, "unit_price_cents": typed("long"),
            }},
            "prior_sessions": int, "prior_purchases": int, "purchase_probability": typed("double"),
            // Kept in _source for training and export; nobody searches a feature vector.
            "features": {"type": "double", "index": false, "doc_values": false}
        }),
    )
}

/// Index template for the per-minute DP metrics (`prefix-*`, daily by window_start_ms).
pub fn metrics_index_template(prefix: &str) -> Value {
    let long = typed("long");
    template(
        prefix,
        json!({
            "window_start_ms": date(), "window_end_ms": date(), "emitted_at_ms": date(),
            "indexed_at": date(),
            "views": long, "carts": long, "purchases": long, "revenue_cents": long,
            "conversion": typed("double"), "epsilon_spent": typed("double")
        }),
    )
}

/// Index template for the records the job rejected (`prefix-*`, daily by rejected_at). The raw
/// value is kept in _source, not indexed.
pub fn invalid_index_template(prefix: &str) -> Value {
    template(
        prefix,
        json!({
            "rejected_at": date(), "ingested_at": date(), "indexed_at": date(),
            "detail": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 1024}}},
            "source_partition": typed("integer"), "source_offset": typed("long"),
            "raw_size_bytes": typed("long"), "raw_truncated": typed("boolean"),
            "raw": typed("binary")
        }),
    )
}

#[cfg(test)]
mod tests {
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
            event: Some(ecom_proto::v1::Event {
                event_id: "e1".into(),
                ip: String::new(),
                kind: 3,
                ..Default::default()
            }),
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
            event: Some(Event {
                event_id: "e1".into(),
                event_time_ms: 1_767_225_600_000,
                kind: 4,
                ..Default::default()
            }),
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
        }
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
        assert!(d.get("tokens").is_none());
        // A session with no state or user still encodes (counts 0).
        let bare = session_doc(&Session { id: "x".into(), ..Default::default() }, 7);
        assert_eq!(bare["kind_counts"]["purchase"], 0);
        assert_eq!(bare["prior_sessions"], 0);
        assert!(bare["purchase_probability"].is_null(), "not scored is null, not 0");
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
                let back = event_from_doc(&to_doc(&EnrichedEvent { event: Some(ev.clone()), ..Default::default() }, 1))
                    .unwrap();
                assert_eq!(back, Event { ip: String::new(), ..ev.clone() });
                n += 1;
            }
        }
        assert!(n > 2_000);
        assert!(event_from_doc(&json!({"event_id": "x", "kind": "teleport", "event_time": 1})).is_err());
    }
}
