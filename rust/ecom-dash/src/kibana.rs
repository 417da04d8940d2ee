//! The same panels as Kibana saved objects: one data view per index the panels read, one Vega
//! visualization per Elasticsearch panel (Redis panels are ecom's page only) (the panel file itself as its spec) and one dashboard that places
//! them, in the NDJSON that Kibana 8.19's saved objects import API takes. kibana/ecom.ndjson is
//! this output, checked by a test so it never drifts from kibana/panels/.
//!
//! Versions are the ones Kibana 8.x writes on export: a lower one is migrated forward on import,
//! a missing one would run every migration since 7.x over modern attributes, and a higher one
//! is refused.
use crate::{Panel, PanelError, Source};
use serde_json::{json, Value};

/// `coreMigrationVersion` of every object.
pub const CORE_MIGRATION_VERSION: &str = "8.8.0";
/// The dashboard's id.
pub const DASHBOARD_ID: &str = "ecom-live-shop";

/// (id, index pattern, time field, name) of each data view; a panel's index must be one of them.
pub const DATA_VIEWS: &[(&str, &str, &str, &str)] = &[
    ("ecom-events", "ecom-events-*", "event_time", "ecom events"),
    ("ecom-sessions", "ecom-sessions-*", "start_ms", "ecom sessions"),
    ("ecom-metrics", "ecom-metrics-*", "window_start_ms", "ecom metrics"),
    ("ecom-invalid", "ecom-invalid-*", "rejected_at", "ecom rejected records"),
    ("ecom-quality", "ecom-quality-*", "window_start_ms", "ecom live model quality"),
];

/// The visualization id of a panel.
pub fn visualization_id(panel_id: &str) -> String {
    format!("ecom-{panel_id}")
}

/// Kibana's grid is 48 columns wide: two panels side by side, as on the page at laptop width.
const GRID_W: u64 = 24;
const GRID_H: u64 = 15;

const EMPTY_SEARCH_SOURCE: &str = r#"{"query":{"query":"","language":"kuery"},"filter":[]}"#;

/// Every saved object, data views first, in page order.
pub fn saved_objects(panels: &[Panel]) -> Vec<Value> {
    let mut out: Vec<Value> = DATA_VIEWS
        .iter()
        .map(|(id, title, time, name)| {
            json!({
                "type": "index-pattern", "id": id,
                "coreMigrationVersion": CORE_MIGRATION_VERSION, "typeMigrationVersion": "8.0.0",
                "managed": false, "references": [],
                "attributes": {"title": title, "timeFieldName": time, "name": name},
            })
        })
        .collect();
    let mut grid = Vec::new();
    let mut references = Vec::new();
    // The feature drift panel's bins come from the model folder, which only ecom's page reads.
    let kibana_panels =
        panels.iter().filter(|p| p.source_kind == Source::Elasticsearch && p.offline.as_deref() != Some("drift"));
    for (i, p) in kibana_panels.enumerate() {
        let vis_state = json!({
            "title": p.title, "type": "vega", "aggs": [],
            "params": {"spec": serde_json::to_string_pretty(&p.source).expect("a JSON value prints")},
        });
        out.push(json!({
            "type": "visualization", "id": visualization_id(&p.id),
            "coreMigrationVersion": CORE_MIGRATION_VERSION, "typeMigrationVersion": "8.5.0",
            "managed": false, "references": [],
            "attributes": {
                "title": p.title, "description": p.description, "version": 1, "uiStateJSON": "{}",
                "visState": vis_state.to_string(),
                "kibanaSavedObjectMeta": {"searchSourceJSON": EMPTY_SEARCH_SOURCE},
            },
        }));
        let i = i as u64;
        grid.push(json!({
            "type": "visualization", "panelIndex": p.id, "embeddableConfig": {},
            "gridData": {"x": (i % 2) * GRID_W, "y": (i / 2) * GRID_H, "w": GRID_W, "h": GRID_H, "i": p.id},
            "panelRefName": format!("panel_{}", p.id),
        }));
        references.push(json!({
            "name": format!("{}:panel_{}", p.id, p.id), "type": "visualization", "id": visualization_id(&p.id),
        }));
    }
    out.push(json!({
        "type": "dashboard", "id": DASHBOARD_ID,
        "coreMigrationVersion": CORE_MIGRATION_VERSION, "typeMigrationVersion": "10.2.0",
        "managed": false, "references": references,
        "attributes": {
            "title": "ecom — live shop",
            "description": "The panels of ecom's live page (ecom dashboard, :8088), from kibana/panels/. Each panel names the index it reads.",
            "version": 1,
            "panelsJSON": Value::Array(grid).to_string(),
            "optionsJSON": json!({"useMargins": true, "syncColors": false, "syncCursor": true,
                                  "syncTooltips": false, "hidePanelTitles": false}).to_string(),
            "timeRestore": true, "timeFrom": "now-1h", "timeTo": "now",
            "refreshInterval": {"pause": false, "value": 5000},
            "kibanaSavedObjectMeta": {"searchSourceJSON": EMPTY_SEARCH_SOURCE},
        },
    }));
    out
}

/// The NDJSON of [`saved_objects`] over every embedded panel: kibana/ecom.ndjson's contents.
pub fn ndjson() -> Result<String, PanelError> {
    let panels = Panel::all()?;
    Ok(saved_objects(&panels).iter().map(|o| format!("{o}\n")).collect())
}
