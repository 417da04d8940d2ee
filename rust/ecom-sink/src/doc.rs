//! Encodes the records the sink moves (EnrichedEvent, Session, WindowMetrics) as the JSON
//! documents both stores hold, and the Elasticsearch index templates for them: one shape per
//! kind, in one place.
use anyhow::Context;
use ecom_proto::v1::{EnrichedEvent, Event, EventKind, InvalidEvent, ModelQuality, Session, Verdict, WindowMetrics};
use prost::Message as _;
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
    d["shadow_probability"] = e.shadow_probability.into();
    d["shadow_model_version"] = e.shadow_model_version.clone().into();
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
/// calibration compares it with `purchased`) and the shadow version's score of the same moment
/// (`shadow_probability`, null when none), with the features of that point by name
/// (`decision_features.<name>`, what the dashboard's feature drift bins). `features` (in the
/// order of `feature_schema_hash`'s schema) and `decision_state` (the protobuf SessionState at
/// the decision point, base64, what `ecom train --mongo-read sessions` folds) are kept for
/// training, not indexed by Elasticsearch; the whole state's LSH tokens and running sums stay
/// out.
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
        "shadow_probability": s.shadow_probability,
        "shadow_model_version": s.shadow_model_version,
        "decision_event_id": s.decision_event_id,
        "decision_features": named_features(&s.decision_features, &s.feature_schema_hash),
        "decision_state": s.decision_state.as_ref().map(|d| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(d.encode_to_vec())
        }),
        "bought": s.bought,
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

/// The event of a stored document with the product fields the job's catalog join gave it
/// (category, price, material, style; empty for a catalog miss): what training folds.
pub fn enriched_from_doc(d: &Value) -> anyhow::Result<EnrichedEvent> {
    let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
    Ok(EnrichedEvent {
        event: Some(event_from_doc(d)?),
        category: text("category"),
        price_cents: d["price_cents"].as_i64().unwrap_or(0),
        material: text("material"),
        style: text("style"),
        catalog_miss: d["catalog_miss"].as_bool().unwrap_or(false),
        ..Default::default()
    })
}

/// What training reads back from a session document ([`session_doc`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSession {
    /// Session id (several documents share one when a pause split the session).
    pub session_id: String,
    /// User id.
    pub user_id: String,
    /// First event time.
    pub start_ms: i64,
    /// Last event time.
    pub end_ms: i64,
    /// Whether it bought (the job's count of purchase events).
    pub purchased: bool,
    /// The state at the decision point; None when a checkout came first.
    pub decision_state: Option<ecom_proto::v1::SessionState>,
    /// Products bought, in order, without repeats.
    pub bought: Vec<String>,
}

/// The fields of a stored session document training needs; an error names the document and
/// the field.
pub fn session_from_doc(d: &Value) -> anyhow::Result<StoredSession> {
    use base64::Engine as _;
    let id = d["id"].as_str().unwrap_or_default();
    let time = |k: &str| d[k].as_i64().with_context(|| format!("session document {id} has no {k}"));
    let decision_state = match d["decision_state"].as_str() {
        Some(b) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b)
                .with_context(|| format!("session document {id}: decision_state is not base64"))?;
            Some(
                ecom_proto::v1::SessionState::decode(bytes.as_slice())
                    .with_context(|| format!("session document {id}: decision_state is not a SessionState"))?,
            )
        }
        None => None,
    };
    Ok(StoredSession {
        session_id: d["session_id"].as_str().unwrap_or_default().to_string(),
        user_id: d["user_id"].as_str().unwrap_or_default().to_string(),
        start_ms: time("start_ms")?,
        end_ms: time("end_ms")?,
        purchased: d["purchased"].as_bool().unwrap_or(false),
        decision_state,
        bought: d["bought"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
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
            "shadow_probability": typed("double"),
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
    let decision: serde_json::Map<String, Value> =
        ecom_core::features::NAMES.iter().map(|n| (n.to_string(), typed("double"))).collect();
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
            "shadow_probability": typed("double"),
            "decision_features": {"properties": decision},
            "bought": typed("keyword"),
            // Kept in _source for training and export; nobody searches a feature vector.
            "features": {"type": "double", "index": false, "doc_values": false},
            "decision_state": typed("binary")
        }),
    )
}

/// ecom-core features by name, when they follow this build's schema (`hash`); else null, since
/// positions of another schema would be named wrongly.
fn named_features(values: &[f64], hash: &str) -> Value {
    let names = ecom_core::features::NAMES;
    if values.len() != names.len() || hash != ecom_core::features::schema_hash() {
        return Value::Null;
    }
    Value::Object(names.iter().zip(values).map(|(n, v)| (n.to_string(), json!(v))).collect())
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

/// The document for one window of a model version's live quality (`_id` = `ModelQuality.id`).
/// Unknown measures (a window without buyers has no ROC AUC) are null.
pub fn quality_doc(q: &ModelQuality, indexed_at_ms: i64) -> Value {
    json!({
        "id": q.id,
        "window_start_ms": q.window_start_ms,
        "window_end_ms": q.window_end_ms,
        "model_version": q.model_version,
        "shadow": q.shadow,
        "sessions": q.sessions,
        "purchases": q.purchases,
        "base_rate": q.base_rate,
        "roc_auc": q.roc_auc,
        "pr_auc": q.pr_auc,
        "log_loss": q.log_loss,
        "brier": q.brier,
        "expected_purchases": q.expected_purchases,
        "purchase_variance": q.purchase_variance,
        "calibration_z": q.calibration_z,
        "calibration": q.calibration.iter().map(|b| json!({
            "lower": b.lower, "upper": b.upper, "sessions": b.sessions, "purchases": b.purchases,
            "mean_predicted": b.mean_predicted,
        })).collect::<Vec<_>>(),
        "emitted_at_ms": q.emitted_at_ms,
        "indexed_at": indexed_at_ms,
    })
}

/// Index template for live model quality (`prefix-*`, daily by window_start_ms).
pub fn quality_index_template(prefix: &str) -> Value {
    let (long, double) = (typed("long"), typed("double"));
    template(
        prefix,
        json!({
            "window_start_ms": date(), "window_end_ms": date(), "emitted_at_ms": date(),
            "indexed_at": date(), "sessions": long, "purchases": long, "base_rate": double,
            "shadow": typed("boolean"),
            "roc_auc": double, "pr_auc": double, "log_loss": double, "brier": double,
            "expected_purchases": double, "purchase_variance": double, "calibration_z": double,
            "calibration": {"properties": {"lower": double, "upper": double, "sessions": long,
                "purchases": long, "mean_predicted": double}}
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
mod tests;
