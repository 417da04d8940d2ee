//! Encodes an EnrichedEvent as the JSON document both stores hold (one shape, one place).
use anyhow::Context;
use ecom_proto::v1::{EnrichedEvent, Event, EventKind, Verdict};
use serde_json::{json, Value};

/// The document for an enriched event. `indexed_at` is the sink's clock at write time.
pub fn to_doc(e: &EnrichedEvent, indexed_at_ms: i64) -> Value {
    let ev = e.event.clone().unwrap_or_default();
    let src = e.source.clone().unwrap_or_default();
    let kind = EventKind::try_from(ev.kind).map(|k| k.as_str_name()).unwrap_or("EVENT_KIND_UNSPECIFIED");
    let verdict = Verdict::try_from(e.verdict).map(|v| v.as_str_name()).unwrap_or("VERDICT_UNSPECIFIED");
    json!({
        "event_id": ev.event_id,
        "event_time": ev.event_time_ms,
        "user_id": ev.user_id,
        "session_id": ev.session_id,
        "kind": kind.trim_start_matches("EVENT_KIND_").to_ascii_lowercase(),
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
        "verdict": verdict.trim_start_matches("VERDICT_").to_ascii_lowercase(),
        "verdict_reasons": e.verdict_reasons,
        "guard_fallback": e.guard_fallback,
        "purchase_probability": e.purchase_probability,
        "model_version": e.model_version,
        "lsh_buckets": e.lsh_buckets.iter().map(|b| format!("{b:016x}")).collect::<Vec<_>>(),
        "produced_at": e.produced_at_ms,
        "ingested_at": e.ingested_at_ms,
        "enriched_at": e.enriched_at_ms,
        "indexed_at": indexed_at_ms,
        "source_topic": src.topic,
        "source_partition": src.partition,
        "source_offset": src.offset,
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

/// Index template for `prefix-*`: keywords for ids and codes, dates for timestamps.
pub fn index_template(prefix: &str) -> Value {
    let kw = json!({"type": "keyword"});
    let date = json!({"type": "date", "format": "epoch_millis"});
    json!({
        "index_patterns": [format!("{prefix}-*")],
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "1s"},
            "mappings": {
                "dynamic_templates": [{"strings": {"match_mapping_type": "string", "mapping": kw}}],
                "properties": {
                    "event_time": date, "produced_at": date, "ingested_at": date,
                    "enriched_at": date, "indexed_at": date,
                    "search_query": {"type": "text", "fields": {"raw": kw}},
                    "user_agent": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 512}}},
                    "quantity": {"type": "integer"}, "unit_price_cents": {"type": "long"},
                    "price_cents": {"type": "long"}, "purchase_probability": {"type": "double"},
                    "guard_fallback": {"type": "boolean"},
                    "source_partition": {"type": "integer"}, "source_offset": {"type": "long"}
                }
            }
        },
        "priority": 100
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_index_names() {
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
