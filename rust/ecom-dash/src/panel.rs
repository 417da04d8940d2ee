//! A panel: its definition in kibana/panels/<id>.json (a Kibana Vega-Lite spec whose `data.url`
//! holds the search), read and checked, and the search for a time range.
use crate::embedded;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The stem every panel's index pattern starts with (`ecom-events-*`).
pub const PANEL_INDEX_STEM: &str = "ecom";

/// What is wrong with a panel definition.
#[derive(Debug, thiserror::Error)]
pub enum PanelError {
    /// Not JSON.
    #[error("kibana/panels/{id}.json is not JSON: {source}")]
    Json {
        /// The panel's id (file stem).
        id: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A field the server needs is missing or of the wrong type.
    #[error("kibana/panels/{id}.json: {field} {why}")]
    Field {
        /// The panel's id (file stem).
        id: String,
        /// The JSON path of the field.
        field: &'static str,
        /// What was expected.
        why: &'static str,
    },
}

/// Where a panel's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Its own search of an Elasticsearch index (`data.url`); Kibana renders it too.
    Elasticsearch,
    /// The Guard's live counts in Redis (`usermeta.source: "redis"`): ecom's page only, as
    /// Kibana reads nothing but Elasticsearch. Rows: `{minute, visitors}` per minute.
    Redis,
}

/// One panel: its Vega-Lite spec and the search behind it.
#[derive(Debug, Clone, Serialize)]
pub struct Panel {
    /// The file stem in kibana/panels.
    pub id: String,
    /// Where its rows come from.
    pub source_kind: Source,
    /// Its title.
    pub title: String,
    /// What it shows and which index it reads (and, for DP metrics, at what ε).
    pub description: String,
    /// The index pattern it searches (empty for a Redis panel).
    pub index: String,
    /// The search body, time filter still as `{"%timefilter%": true}`.
    #[serde(skip)]
    pub body: Value,
    /// Dot path of the rows in the search response (`data.format.property`).
    #[serde(skip)]
    pub property: String,
    /// Its place on the page (`usermeta.order` in the spec, Vega-Lite's field for data of
    /// our own; 100 when absent), then the id.
    pub order: i64,
    /// Rows this server adds from the model folders (`usermeta.offline`): "calibration", the
    /// serving model's test-set bins; "quality", each charted version's test-set ROC AUC.
    #[serde(skip)]
    pub offline: Option<String>,
    /// The Vega-Lite spec with `data` replaced by `{"name": "rows"}`: the page sets the rows.
    pub spec: Value,
    /// The file as it is: the spec Kibana renders.
    #[serde(skip)]
    pub source: Value,
}

impl Panel {
    /// Reads a panel definition (a Kibana Vega-Lite spec with `data.url`).
    pub fn parse(id: &str, text: &str) -> Result<Self, PanelError> {
        let v: Value = serde_json::from_str(text).map_err(|source| PanelError::Json { id: id.into(), source })?;
        let field = |field, why| PanelError::Field { id: id.into(), field, why };
        let str_at = |ptr: &str, name: &'static str| {
            v.pointer(ptr).and_then(Value::as_str).map(str::to_string).ok_or_else(|| field(name, "must be a string"))
        };
        let title = str_at("/title", "title")?;
        let description = str_at("/description", "description")?;
        let source_kind = match v.pointer("/usermeta/source").and_then(Value::as_str) {
            None => Source::Elasticsearch,
            Some("redis") => Source::Redis,
            Some(_) => return Err(field("usermeta.source", "must be \"redis\" when present")),
        };
        let (index, property, body) = if source_kind == Source::Redis {
            (String::new(), String::new(), Value::Null)
        } else {
            let index = str_at("/data/url/index", "data.url.index")?;
            let property = str_at("/data/format/property", "data.format.property")?;
            let body =
                v.pointer("/data/url/body").cloned().ok_or_else(|| field("data.url.body", "must be a search body"))?;
            if !index.split(',').all(|i| i.starts_with(&format!("{PANEL_INDEX_STEM}-"))) {
                return Err(field(
                    "data.url.index",
                    "must name only patterns that start with \"ecom-\" (the sink's indices)",
                ));
            }
            if !has_timefilter(&body) {
                return Err(field("data.url.body", "must filter on time with {\"%timefilter%\": true}"));
            }
            (index, property, body)
        };
        let order = v.pointer("/usermeta/order").and_then(Value::as_i64).unwrap_or(100);
        let offline = v.pointer("/usermeta/offline").and_then(Value::as_str).map(str::to_string);
        if offline.as_deref().is_some_and(|o| !["calibration", "quality", "drift"].contains(&o)) {
            return Err(field("usermeta.offline", "must be \"calibration\", \"quality\" or \"drift\" when present"));
        }
        let mut spec = v.clone();
        spec["data"] = json!({"name": "rows"});
        Ok(Self {
            id: id.into(),
            source_kind,
            title,
            description,
            index,
            body,
            property,
            order,
            offline,
            spec,
            source: v,
        })
    }

    /// Every panel embedded in the binary, in page order.
    pub fn all() -> Result<Vec<Panel>, PanelError> {
        let mut all =
            embedded::PANELS.iter().map(|(id, text)| Panel::parse(id, text)).collect::<Result<Vec<_>, _>>()?;
        all.sort_by(|a, b| (a.order, &a.id).cmp(&(b.order, &b.id)));
        Ok(all)
    }

    /// The index pattern(s) with `stem` in place of [`PANEL_INDEX_STEM`].
    pub fn index_in(&self, stem: &str) -> String {
        self.index.split(',').map(|i| format!("{stem}{}", &i[PANEL_INDEX_STEM.len()..])).collect::<Vec<_>>().join(",")
    }

    /// The search body for the time range `[from_ms, to_ms]`.
    pub fn body_for(&self, from_ms: i64, to_ms: i64) -> Value {
        let mut body = self.body.clone();
        fill_timefilter(&mut body, from_ms, to_ms);
        body
    }

    /// The rows of a search response: the array at `property` (empty when absent).
    pub fn rows(&self, response: &Value) -> Vec<Value> {
        self.property
            .split('.')
            .try_fold(response, |v, key| v.get(key))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
}

pub(crate) fn has_timefilter(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.get("%timefilter%") == Some(&Value::Bool(true)) || m.values().any(has_timefilter),
        Value::Array(a) => a.iter().any(has_timefilter),
        _ => false,
    }
}

/// Replaces each `{"%timefilter%": true}` with a range, as Kibana does.
fn fill_timefilter(v: &mut Value, from_ms: i64, to_ms: i64) {
    match v {
        Value::Object(m) if m.get("%timefilter%") == Some(&Value::Bool(true)) => {
            *v = json!({"gte": from_ms, "lte": to_ms, "format": "epoch_millis"});
        }
        Value::Object(m) => m.values_mut().for_each(|x| fill_timefilter(x, from_ms, to_ms)),
        Value::Array(a) => a.iter_mut().for_each(|x| fill_timefilter(x, from_ms, to_ms)),
        _ => {}
    }
}

/// The page's time ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Range {
    /// The last 15 minutes.
    #[serde(rename = "15m")]
    Min15,
    /// The last hour.
    #[serde(rename = "1h")]
    Hour,
    /// The last 24 hours.
    #[serde(rename = "24h")]
    Day,
    /// Everything indexed.
    #[serde(rename = "all")]
    All,
}

impl Range {
    /// `[from, to]` in ms since epoch at `now_ms`.
    pub fn bounds(self, now_ms: i64) -> (i64, i64) {
        let back = match self {
            Range::Min15 => 15 * 60_000,
            Range::Hour => 3_600_000,
            Range::Day => 86_400_000,
            Range::All => return (0, i64::MAX / 2),
        };
        (now_ms - back, now_ms)
    }
}
