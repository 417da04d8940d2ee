//! JSON lines for the generator's files (events.jsonl, truth.jsonl, catalog.jsonl): the
//! protobuf field names, enums by name, money in cents, times in ms.
use crate::{GenRecord, Payload};
use ecom_proto::v1::{truth_record, Anomaly, Event, EventKind, Product, RejectReason, TruthRecord};
use serde_json::{json, Value};

fn kind_name(k: i32) -> Value {
    EventKind::try_from(k).map_or_else(|_| json!(k), |k| json!(k.as_str_name()))
}

/// An Event as JSON.
pub fn event(e: &Event) -> Value {
    json!({
        "event_id": e.event_id, "event_time_ms": e.event_time_ms, "user_id": e.user_id,
        "session_id": e.session_id, "kind": kind_name(e.kind), "product_id": e.product_id,
        "quantity": e.quantity, "unit_price_cents": e.unit_price_cents, "search_query": e.search_query,
        "page": e.page, "referrer": e.referrer, "channel": e.channel, "device": e.device,
        "user_agent": e.user_agent, "ip": e.ip, "country": e.country,
    })
}

/// One raw record: the event, or the raw bytes (hex) of a record that is not one, with the
/// reason it must be rejected for.
pub fn record(r: &GenRecord) -> Value {
    let mut v = match &r.payload {
        Payload::Event(e) => json!({"event": event(e)}),
        Payload::Bytes(b) => json!({"raw_hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>()}),
    };
    v["sequence"] = json!(r.sequence);
    v["key"] = json!(r.key);
    if let Some(reason) = r.expected_reject {
        v["expected_reject"] = json!(reason.as_str_name());
    }
    if let Some(h) = r.hostile {
        v["hostile"] = json!(h.as_str());
    }
    if let Some(lead) = r.clock_lead_ms {
        v["clock_lead_ms"] = json!(lead);
    }
    v
}

/// A catalog product as JSON.
pub fn product(p: &Product) -> Value {
    json!({
        "product_id": p.product_id, "name": p.name, "category": p.category, "material": p.material,
        "style": p.style, "colour": p.colour, "brand": p.brand, "price_cents": p.price_cents,
        "width_cm": p.width_cm, "depth_cm": p.depth_cm, "height_cm": p.height_cm, "stock": p.stock,
        "margin_bp": p.margin_bp,
    })
}

/// A truth record as JSON: `{"session": {...}}` or `{"malformed": {...}}`.
pub fn truth(t: &TruthRecord) -> Value {
    match &t.record {
        Some(truth_record::Record::Session(s)) => json!({"session": {
            "session_id": s.session_id, "user_id": s.user_id, "persona": s.persona,
            "purchase_probability": s.purchase_probability,
            "observable_probability": s.observable_probability,
            "inferable_probability": s.inferable_probability, "purchased": s.purchased,
            "anomaly": Anomaly::try_from(s.anomaly).map_or("?", |a| a.as_str_name()),
            "start_ms": s.start_ms, "events": s.events, "returning_user": s.returning_user,
            "truncated": s.truncated, "decision_events": s.decision_events,
            "decision_ms": s.decision_ms,
        }}),
        Some(truth_record::Record::Malformed(m)) => json!({"malformed": {
            "sequence": m.sequence, "reason": RejectReason::try_from(m.reason).map_or("?", |r| r.as_str_name()),
            "event_id": m.event_id, "detail": m.detail,
        }}),
        None => json!({}),
    }
}
