//! kibana/ecom.ndjson, checked without a Kibana: it is what the panels generate, every object
//! has the shape Kibana 8.19's import takes, every reference resolves, and every field a panel
//! uses exists with the right type in the index templates `ecom sink` installs.
use ecom_dash::kibana::{self, DATA_VIEWS};
use ecom_dash::{Panel, Source};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

fn committed() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../kibana/ecom.ndjson"))
        .expect("kibana/ecom.ndjson")
}

fn objects() -> Vec<Value> {
    committed().lines().map(|l| serde_json::from_str(l).expect("each line of kibana/ecom.ndjson is JSON")).collect()
}

#[test]
fn the_file_is_what_the_panels_generate() {
    assert!(
        committed() == kibana::ndjson().unwrap(),
        "kibana/ecom.ndjson is stale: run `ecom dashboard --kibana-ndjson > kibana/ecom.ndjson`"
    );
}

#[test]
fn every_object_has_kibanas_shape_and_every_reference_resolves() {
    let objects = objects();
    let mut ids = BTreeSet::new();
    for o in &objects {
        let (t, id) = (o["type"].as_str().unwrap(), o["id"].as_str().unwrap());
        assert!(ids.insert((t, id)), "{t} {id} twice");
        assert_eq!(o["coreMigrationVersion"], "8.8.0", "{id}");
        let want = match t {
            "index-pattern" => "8.0.0",
            "visualization" => "8.5.0",
            "dashboard" => "10.2.0",
            other => panic!("unexpected type {other}"),
        };
        assert_eq!(o["typeMigrationVersion"], want, "{id}");
        assert_eq!(o["managed"], false, "{id}");
        assert!(o["attributes"]["title"].is_string(), "{id} has no title");
        for r in o["references"].as_array().expect("references") {
            let target = (r["type"].as_str().unwrap(), r["id"].as_str().unwrap());
            assert!(
                objects.iter().any(|x| (x["type"].as_str().unwrap(), x["id"].as_str().unwrap()) == target),
                "{id} refers to {target:?}, which the file does not hold"
            );
        }
    }
    let titles: BTreeSet<&str> = objects
        .iter()
        .filter(|o| o["type"] == "index-pattern")
        .map(|o| o["attributes"]["title"].as_str().unwrap())
        .collect();
    let allowed_vis_keys: BTreeSet<&str> =
        ["title", "description", "version", "kibanaSavedObjectMeta", "uiStateJSON", "visState", "savedSearchRefName"]
            .into();
    let mut vis = BTreeSet::new();
    for o in objects.iter().filter(|o| o["type"] == "visualization") {
        let id = o["id"].as_str().unwrap();
        for k in o["attributes"].as_object().unwrap().keys() {
            assert!(
                allowed_vis_keys.contains(k.as_str()),
                "{id}: attribute {k} is not in Kibana's visualization schema"
            );
        }
        let state: Value = serde_json::from_str(o["attributes"]["visState"].as_str().unwrap()).unwrap();
        assert_eq!((state["type"].as_str(), state["aggs"].clone()), (Some("vega"), json!([])), "{id}");
        let spec: Value = serde_json::from_str(state["params"]["spec"].as_str().unwrap()).unwrap();
        assert!(spec["$schema"].as_str().unwrap().contains("vega-lite"), "{id}: Kibana needs $schema");
        for index in spec["data"]["url"]["index"].as_str().unwrap().split(',') {
            assert!(titles.contains(index), "{id} reads {index}, which no data view names");
        }
        assert!(spec["data"]["format"]["property"].is_string(), "{id}");
        assert!(spec["data"]["url"].get("%context%").is_none(), "{id}: %context% with body.query is refused");
        vis.insert(id);
    }
    let dash: Vec<&Value> = objects.iter().filter(|o| o["type"] == "dashboard").collect();
    assert_eq!(dash.len(), 1);
    let refs: BTreeMap<&str, &str> = dash[0]["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["id"].as_str().unwrap()))
        .collect();
    let grid: Vec<Value> = serde_json::from_str(dash[0]["attributes"]["panelsJSON"].as_str().unwrap()).unwrap();
    assert_eq!(grid.len(), vis.len(), "the dashboard places every visualization");
    let mut placed = BTreeSet::new();
    for g in &grid {
        let index = g["panelIndex"].as_str().unwrap();
        assert!(!index.contains(':'));
        assert_eq!(g["gridData"]["i"], index);
        let (x, w) = (g["gridData"]["x"].as_u64().unwrap(), g["gridData"]["w"].as_u64().unwrap());
        assert!(x + w <= 48, "{index} leaves Kibana's 48-column grid");
        let name = format!("{index}:{}", g["panelRefName"].as_str().unwrap());
        let target = refs.get(name.as_str()).unwrap_or_else(|| panic!("panel {index}: no reference named {name}"));
        assert!(placed.insert(*target), "{target} placed twice");
    }
    assert_eq!(placed, vis);
    let refresh = &dash[0]["attributes"]["refreshInterval"];
    assert!(refresh["pause"].is_boolean() && refresh["value"].is_u64());
}

/// The mapping `ecom sink` gives each index pattern: the template's explicit properties, and
/// for every other field of the sink's documents what the template's dynamic rule makes of it
/// (a string is a keyword), flattened to dotted paths.
fn sink_mappings() -> BTreeMap<&'static str, BTreeMap<String, String>> {
    use ecom_proto::v1::*;
    use ecom_sink::doc;
    let event = EnrichedEvent {
        event: Some(Event { product_id: Some("p".into()), search_query: Some("q".into()), ..Default::default() }),
        verdict_reasons: vec!["rule: detail".into()],
        shap_reasons: vec![ShapReason::default()],
        recommendations: vec![SimilarProduct::default()],
        ..Default::default()
    };
    let session = Session {
        state: Some(SessionState {
            category_views: vec![CategoryCount::default()],
            cart: vec![CartLine::default()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let invalid = InvalidEvent { ingested_at_ms: 1, ..Default::default() };
    let quality = ModelQuality { roc_auc: Some(0.8), pr_auc: Some(0.3), ..Default::default() };
    [
        ("ecom-events-*", doc::event_index_template("ecom-events"), doc::to_doc(&event, 1)),
        ("ecom-sessions-*", doc::session_index_template("ecom-sessions"), doc::session_doc(&session, 1)),
        ("ecom-metrics-*", doc::metrics_index_template("ecom-metrics"), doc::metrics_doc(&WindowMetrics::default(), 1)),
        ("ecom-invalid-*", doc::invalid_index_template("ecom-invalid"), doc::invalid_doc(&invalid, 1)),
        ("ecom-quality-*", doc::quality_index_template("ecom-quality"), doc::quality_doc(&quality, 1)),
    ]
    .into_iter()
    .map(|(pattern, template, sample)| {
        let mut fields = BTreeMap::new();
        dynamic_types("", &sample, &mut fields);
        explicit_types("", &template["template"]["mappings"]["properties"], &mut fields);
        (pattern, fields)
    })
    .collect()
}

fn explicit_types(prefix: &str, props: &Value, out: &mut BTreeMap<String, String>) {
    for (k, v) in props.as_object().unwrap() {
        let path = format!("{prefix}{k}");
        if let Some(t) = v["type"].as_str() {
            out.insert(path.clone(), t.to_string());
        }
        if let Some(sub) = v.get("properties") {
            explicit_types(&format!("{path}."), sub, out);
        }
        if let Some(sub) = v.get("fields") {
            explicit_types(&format!("{path}."), sub, out);
        }
    }
}

fn dynamic_types(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    for (k, x) in v.as_object().unwrap() {
        let path = format!("{prefix}{k}");
        let x = if let Value::Array(a) = x { a.first().unwrap_or(&Value::Null) } else { x };
        match x {
            Value::String(_) => drop(out.insert(path, "keyword".into())),
            Value::Bool(_) => drop(out.insert(path, "boolean".into())),
            Value::Number(n) => drop(out.insert(path, if n.is_f64() { "float" } else { "long" }.into())),
            Value::Object(_) => dynamic_types(&format!("{path}."), x, out),
            Value::Null | Value::Array(_) => {}
        }
    }
}

/// Every (field, what the panel needs of it) in a search body: aggregations, query clauses,
/// and the fields its scripts read through `doc['…']`.
fn used_fields(v: &Value, out: &mut Vec<(String, &'static str, String)>, at: &str) {
    const NUMERIC: &str = "numeric";
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let here = format!("{at}.{k}");
                match (k.as_str(), x) {
                    ("terms" | "cardinality", Value::Object(o)) if o.get("field").is_some() => {
                        out.push((o["field"].as_str().unwrap().into(), "keyword", here.clone()))
                    }
                    ("date_histogram", Value::Object(o)) => {
                        out.push((o["field"].as_str().unwrap().into(), "date", here.clone()))
                    }
                    ("histogram" | "sum" | "max" | "min" | "avg" | "percentiles", Value::Object(o))
                        if o.get("field").is_some() =>
                    {
                        out.push((o["field"].as_str().unwrap().into(), NUMERIC, here.clone()))
                    }
                    ("exists", Value::Object(o)) => {
                        out.push((o["field"].as_str().unwrap().into(), "any", here.clone()))
                    }
                    ("range", Value::Object(o)) => {
                        for (f, r) in o {
                            let need = if r.get("%timefilter%").is_some() { "date" } else { NUMERIC };
                            out.push((f.clone(), need, here.clone()));
                        }
                    }
                    ("term" | "terms", Value::Object(o)) => {
                        for (f, t) in o {
                            let need = match t {
                                Value::Bool(_) => "boolean",
                                Value::Array(a) if a.iter().all(Value::is_string) => "keyword",
                                Value::String(_) => "keyword",
                                _ => "any",
                            };
                            out.push((f.clone(), need, here.clone()));
                        }
                    }
                    ("source", Value::String(script)) => {
                        for part in script.split("doc['").skip(1) {
                            let field = part.split('\'').next().unwrap();
                            out.push((field.into(), "doc_values", here.clone()));
                        }
                    }
                    _ => {}
                }
                used_fields(x, out, &here);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| used_fields(x, out, at)),
        _ => {}
    }
}

#[test]
fn every_field_a_panel_uses_exists_with_the_right_type() {
    let mappings = sink_mappings();
    let panels = Panel::all().unwrap();
    assert!(!panels.is_empty());
    for p in panels.iter().filter(|p| p.source_kind == Source::Elasticsearch) {
        // A panel over several indices (records enriched or rejected) needs each field in one
        // of them at least, with the right type wherever it is.
        let indices: Vec<&str> = p.index.split(',').collect();
        let maps: Vec<&BTreeMap<String, String>> = indices
            .iter()
            .map(|i| mappings.get(i).unwrap_or_else(|| panic!("{}: the sink writes no {i}", p.id)))
            .collect();
        assert!(
            !p.body.to_string().contains("\"script\""),
            "panel {} runs a script: the local Elasticsearch (dev/up) has no painless; have the sink store the value",
            p.id
        );
        let mut used = Vec::new();
        used_fields(&p.body, &mut used, "");
        assert!(!used.is_empty(), "{}: no field found", p.id);
        for (field, need, at) in used {
            let found: Vec<&str> = maps.iter().filter_map(|m| m.get(&field)).map(String::as_str).collect();
            assert!(!found.is_empty(), "panel {} uses {field} (at {at}), which {} does not map", p.id, p.index);
            for have in found {
                let ok = match need {
                    "date" => have == "date",
                    "numeric" => ["long", "integer", "double", "float"].contains(&have),
                    "keyword" => have == "keyword",
                    "boolean" => have == "boolean",
                    "doc_values" => !["text", "binary"].contains(&have),
                    _ => true,
                };
                assert!(ok, "panel {} needs {field} as {need} (at {at}), but {} maps it as {have}", p.id, p.index);
            }
        }
        for index in indices {
            assert_eq!(DATA_VIEWS.iter().filter(|v| v.1 == index).count(), 1, "{}: one data view per index", p.id);
        }
    }
}
