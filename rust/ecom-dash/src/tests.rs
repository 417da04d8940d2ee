//! Unit tests of the panels: every embedded panel parses, time filters and ranges, Redis panels.
use super::*;
use crate::panel::has_timefilter;

#[test]
fn every_embedded_panel_parses_and_filters_on_time() {
    let panels = Panel::all().unwrap();
    assert!(!panels.is_empty());
    for p in &panels {
        assert_eq!(p.spec["data"], json!({"name": "rows"}), "{}", p.id);
        if p.source_kind == Source::Redis {
            continue;
        }
        let body = p.body_for(1, 2);
        assert!(!has_timefilter(&body), "{}: the time filter is filled in", p.id);
        assert!(body.to_string().contains("\"gte\":1"), "{}", p.id);
    }
}

#[test]
fn the_time_filter_becomes_a_range_and_rows_come_from_the_property() {
    let text = r#"{"title": "t", "description": "d", "data": {"url": {"index": "ecom-events-*",
        "body": {"size": 0, "query": {"range": {"event_time": {"%timefilter%": true}}},
                 "aggs": {"m": {"date_histogram": {"field": "event_time", "fixed_interval": "1m"}}}}},
        "format": {"property": "aggregations.m.buckets"}}, "mark": "bar"}"#;
    let p = Panel::parse("t", text).unwrap();
    assert_eq!(
        p.body_for(10, 20)["query"]["range"]["event_time"],
        json!({"gte": 10, "lte": 20, "format": "epoch_millis"})
    );
    let resp = json!({"aggregations": {"m": {"buckets": [{"key": 1, "doc_count": 3}]}}});
    assert_eq!(p.rows(&resp), vec![json!({"key": 1, "doc_count": 3})]);
    assert!(p.rows(&json!({})).is_empty());
    let no_time = text.replace(r#"{"%timefilter%": true}"#, r#"{"gte": 0}"#);
    assert!(Panel::parse("t", &no_time).unwrap_err().to_string().contains("%timefilter%"));
    assert_eq!(p.index_in("shop"), "shop-events-*");
    let two = Panel::parse("t", &text.replace("ecom-events-*", "ecom-events-*,ecom-invalid-*")).unwrap();
    assert_eq!(two.index_in("shop"), "shop-events-*,shop-invalid-*");
    assert!(Panel::parse("t", &text.replace("ecom-events-*", "ecom-events-*,logs-*")).is_err());
    assert!(Panel::parse("t", &text.replace("ecom-events-*", "logs-*")).is_err());
}

#[test]
fn a_redis_panel_needs_no_search() {
    let text = r#"{"title": "t", "description": "d", "usermeta": {"source": "redis"}, "mark": "bar"}"#;
    let p = Panel::parse("live", text).unwrap();
    assert_eq!((p.source_kind, p.index.as_str()), (Source::Redis, ""));
    assert!(Panel::parse("x", &text.replace("redis", "kafka")).is_err());
}

#[test]
fn ranges_end_now_and_all_has_no_start() {
    assert_eq!(Range::Min15.bounds(1_000_000), (100_000, 1_000_000));
    assert_eq!(Range::All.bounds(5).0, 0);
}
