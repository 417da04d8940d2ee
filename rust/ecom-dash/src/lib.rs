//! ecom-dash: the live dashboard. One HTTP server serves the page (dashboard/, its chart library
//! bundled) and answers each panel's data call by running that panel's own aggregation against
//! Elasticsearch — read-only, with a timeout, and nothing else: there is no pass-through of a
//! query from the browser.
//!
//! A panel is defined once, in kibana/panels/<id>.json, as a Vega-Lite spec the way Kibana's
//! Vega visualization takes it: `data.url` holds the index and the search body, with the time
//! filter written `{"%timefilter%": true}`, and `data.format.property` names the array of the
//! response to chart. Kibana renders the file as it is; this server runs the same search with
//! the page's time range in place of the filter, and the page renders the same spec with the
//! rows it gets back. So the two can never drift apart.
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![deny(unused_must_use)]

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ecom_core::now_ms;
use ecom_core::secret::SecretUrl;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod drift;
pub mod kibana;
mod panel;

pub use panel::{Panel, PanelError, Range, Source, PANEL_INDEX_STEM};

/// The page, its assets and the panel definitions, embedded at build time (build.rs).
pub mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// Everything `ecom dashboard` needs.
#[derive(Debug, Clone)]
pub struct DashConfig {
    /// HTTP listen address (default 127.0.0.1:8088).
    pub addr: SocketAddr,
    /// Elasticsearch URL (basic auth from its credentials).
    pub es_url: SecretUrl,
    /// Longest a panel's search may take before the page is told Elasticsearch is not answering.
    pub query_timeout: Duration,
    /// The stem of the indices: panels name `ecom-events-*`, `ecom-sessions-*` and
    /// `ecom-metrics-*`, and the server reads `<stem>-events-*` and so on (the sink's index
    /// prefixes are `<stem>-events`, `<stem>-sessions`, `<stem>-metrics`).
    pub index_stem: String,
    /// Redis of ecom serve's Guard, which keeps the live counts (visitors per minute, open
    /// sessions) in the round trip it makes for its rules.
    pub redis_url: SecretUrl,
    /// PEM CA certificates a `rediss://` server's certificate must chain to.
    pub redis_ca_pem: Option<Vec<u8>>,
    /// The Guard's key prefix (its `key_prefix`).
    pub redis_key_prefix: String,
    /// Models directory of ecom serve: a panel with `usermeta.offline: "calibration"` draws the
    /// serving model's (`CURRENT`) test-set calibration from its metrics.json beside the live one.
    pub models_dir: std::path::PathBuf,
}

impl Default for DashConfig {
    fn default() -> Self {
        Self {
            addr: ([127, 0, 0, 1], 8088).into(),
            es_url: SecretUrl::new("http://127.0.0.1:9200", None),
            query_timeout: Duration::from_secs(5),
            index_stem: PANEL_INDEX_STEM.into(),
            redis_url: SecretUrl::new("redis://127.0.0.1:6379", None),
            redis_ca_pem: None,
            redis_key_prefix: "ecom:guard".into(),
            models_dir: "models".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct DataQuery {
    range: Option<Range>,
}

/// A panel's data call's answer.
#[derive(Debug, Serialize, Default)]
pub struct PanelData {
    /// The rows to chart.
    pub rows: Vec<Value>,
    /// Elasticsearch's own time for the search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<u64>,
    /// Documents the search matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_hits: Option<u64>,
    /// One number to show above the chart, for people (the sessions open now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    /// The event time the headline is as of (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of_ms: Option<i64>,
    /// Nothing indexed in the range yet.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub empty: bool,
    /// Says why there is nothing to chart, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Elasticsearch could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

struct AppState {
    cfg: DashConfig,
    http: reqwest::Client,
    redis: redis::Client,
    panels: Vec<Panel>,
}

/// The serving model's test-set calibration bins, as rows shaped like the live panel's
/// histogram buckets (`series` names them), and a line naming the model and its offline numbers.
fn serving_calibration(models_dir: &std::path::Path) -> Result<(Vec<Value>, String), String> {
    let version = ecom_model::current(models_dir).ok_or_else(|| {
        format!(
            "no serving model to compare with ({} names no version)",
            models_dir.join(ecom_model::CURRENT).display()
        )
    })?;
    let dir = models_dir.join(&version);
    let m: ecom_model::Evaluation = ecom_model::read_json(&dir, ecom_model::METRICS_FILE)
        .map_err(|e| format!("the serving model {version} has no readable metrics: {e:#}"))?;
    let xgb = m
        .models
        .get("xgboost")
        .ok_or_else(|| format!("{} has no models.xgboost", dir.join(ecom_model::METRICS_FILE).display()))?;
    let series = format!("offline test set, model {version}");
    let rows = xgb
        .scores
        .calibration
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| {
            let purchased = (b.observed_rate * b.count as f64).round();
            json!({"key": b.lo, "doc_count": b.count, "predicted": {"value": b.mean_predicted},
                   "purchased": {"doc_count": purchased}, "series": series})
        })
        .collect();
    let num = |x: Option<f64>| x.map_or("?".to_string(), |x| format!("{x:.3}"));
    let s = &xgb.scores;
    let headline = format!(
        "serving model {version} (XGBoost) on its test set of {} sessions: ROC AUC {}, Brier {}, log loss {}",
        m.split.test.sessions,
        num(s.roc_auc),
        num(s.brier),
        num(s.log_loss)
    );
    Ok((rows, headline))
}

/// Beside each model version's live quality windows (search hits of ecom-quality-*), a row of
/// its offline test-set ROC AUC (`_source.offline`: true) from its metrics.json, and a headline
/// on each version's latest window next to that offline number, and on its calibration pooled
/// over every window in the range, flagged past [`ecom_model::drift::CALIBRATION_Z_FLAG`].
fn with_offline_quality(data: &mut PanelData, models_dir: &std::path::Path) {
    use ecom_model::drift::Calibration;
    // Per (version, shadow): its latest window, and the calibration of all its windows.
    let mut latest: std::collections::BTreeMap<(String, bool), (Value, Calibration)> = Default::default();
    for s in data.rows.iter().map(|r| &r["_source"]) {
        let Some(v) = s["model_version"].as_str() else { continue };
        let (l, pooled) = latest.entry((v.to_string(), s["shadow"].as_bool() == Some(true))).or_default();
        if l["window_start_ms"].as_i64() < s["window_start_ms"].as_i64() {
            *l = s.clone();
        }
        pooled.merge(&Calibration {
            sessions: s["sessions"].as_u64().unwrap_or(0),
            purchases: s["purchases"].as_u64().unwrap_or(0),
            expected: s["expected_purchases"].as_f64().unwrap_or(0.0),
            variance: s["purchase_variance"].as_f64().unwrap_or(0.0),
        });
    }
    let num = |x: Option<f64>| x.map_or("n/a".to_string(), |x| format!("{x:.3}"));
    let (mut parts, mut calibration) = (Vec::new(), Vec::new());
    let mut ruled = std::collections::BTreeSet::new();
    for ((version, shadow), (s, pooled)) in &latest {
        let offline = ecom_model::offline_roc_auc(models_dir, version);
        if let Some(auc) = offline.filter(|_| ruled.insert(version.clone())) {
            data.rows.push(json!({"_source": {"model_version": version, "roc_auc": auc, "offline": true}}));
        }
        let mark = if *shadow { " (shadow)" } else { "" };
        parts.push(format!(
            "{version}{mark} ROC AUC {} over {} sessions ({} bought), log loss {}, Brier {} (offline test set ROC AUC {})",
            num(s["roc_auc"].as_f64()),
            s["sessions"],
            s["purchases"],
            num(s["log_loss"].as_f64()),
            num(s["brier"].as_f64()),
            num(offline)
        ));
        let verdict = if pooled.flagged() { "MISCALIBRATED" } else { "within chance" };
        calibration.push(format!(
            "{version}{mark} {verdict}: {} bought against {:.1} predicted (ratio {}, z {})",
            pooled.purchases,
            pooled.expected,
            num(pooled.ratio()),
            pooled.z().map_or("n/a".to_string(), |z| format!("{z:+.1}"))
        ));
    }
    if !parts.is_empty() {
        data.headline = Some(format!(
            "latest window: {}. Calibration over the range: {}",
            parts.join("; "),
            calibration.join("; ")
        ));
    }
}

/// The most minutes a Redis panel reads: the Guard keeps each minute's visitors for 25 h.
const LIVE_MINUTES: i64 = 24 * 60;

impl AppState {
    async fn panel_data(&self, panel: &Panel, range: Range) -> PanelData {
        let mut data = match panel.source_kind {
            Source::Elasticsearch if panel.offline.as_deref() == Some("drift") => {
                return self.feature_drift(panel, range).await;
            }
            Source::Elasticsearch => self.search(panel, range).await,
            Source::Redis => self.live(range).await,
        };
        if panel.offline.as_deref() == Some("quality") && data.error.is_none() {
            with_offline_quality(&mut data, &self.cfg.models_dir);
        } else if panel.offline.is_some() && data.error.is_none() {
            match serving_calibration(&self.cfg.models_dir) {
                Ok((rows, headline)) => {
                    // The offline rows draw even before any live session is in.
                    if data.empty {
                        data.headline = Some(format!("{headline}; {}", data.message.take().unwrap_or_default()));
                        data.empty = false;
                    } else {
                        data.headline = Some(headline);
                    }
                    data.rows.extend(rows);
                }
                Err(why) => data.headline = Some(why),
            }
        }
        data
    }

    /// The Guard's live counts: distinct visitors per minute of event time over the range (at
    /// most 24 h back from the newest event the Guard saw) and the sessions open now, in one
    /// pipelined round trip of read-only commands.
    async fn live(&self, range: Range) -> PanelData {
        let redis_url = &self.cfg.redis_url;
        let down = |e: String| PanelData {
            error: Some(format!("Redis at {redis_url} is not answering: {e}")),
            ..Default::default()
        };
        let key = |parts: &str| format!("{}:live:{parts}", self.cfg.redis_key_prefix);
        let read = async {
            let mut conn = self.redis.get_multiplexed_async_connection().await?;
            let newest: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(key("sessions"))
                .arg(-1)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await?;
            let Some(&(_, newest_ms)) = newest.first() else {
                return Ok::<_, redis::RedisError>(None);
            };
            let newest_ms = newest_ms as i64;
            let (from, _) = range.bounds(newest_ms);
            let last = newest_ms / 60_000;
            let first = (from / 60_000).max(last - LIVE_MINUTES + 1);
            let mut pipe = redis::pipe();
            pipe.cmd("ZCARD").arg(key("sessions"));
            for m in first..=last {
                pipe.cmd("PFCOUNT").arg(key(&format!("visitors:{m}")));
            }
            let counts: Vec<i64> = pipe.query_async(&mut conn).await?;
            Ok(Some((newest_ms, first, counts)))
        };
        let answer = match tokio::time::timeout(self.cfg.query_timeout, read).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => return down(e.to_string()),
            Err(_) => return down(format!("no answer within {:?}", self.cfg.query_timeout)),
        };
        let Some((newest_ms, first, counts)) = answer else {
            return PanelData {
                empty: true,
                message: Some(format!(
                    "no data yet in Redis under {} — run dev/demo (ecom serve's Guard keeps the live counts)",
                    key("*")
                )),
                ..Default::default()
            };
        };
        let rows: Vec<Value> = counts[1..]
            .iter()
            .zip(first..)
            .filter(|(n, _)| **n > 0)
            .map(|(n, m)| json!({"minute": m * 60_000, "visitors": n}))
            .collect();
        PanelData {
            headline: Some(format!("{} sessions open now", counts[0])),
            as_of_ms: Some(newest_ms),
            total_hits: Some(rows.len() as u64),
            rows,
            ..Default::default()
        }
    }

    /// Where `panel`'s searches go (a missing index is no data, not an error).
    fn search_url(&self, panel: &Panel) -> String {
        format!(
            "{}/{}/_search?ignore_unavailable=true&allow_no_indices=true&request_cache=true",
            self.cfg.es_url.without_credentials().trim_end_matches('/'),
            panel.index_in(&self.cfg.index_stem)
        )
    }

    async fn search(&self, panel: &Panel, range: Range) -> PanelData {
        let (from, to) = range.bounds(now_ms());
        self.search_body(panel, &panel.body_for(from, to)).await
    }

    /// The feature drift panel: the serving version's reference bins, one range aggregation per
    /// feature and window, and a PSI per window and feature (drift.rs).
    async fn feature_drift(&self, panel: &Panel, range: Range) -> PanelData {
        let dir = &self.cfg.models_dir;
        let Some(version) = ecom_model::current(dir) else {
            return PanelData {
                empty: true,
                message: Some(format!(
                    "no serving model to compare with ({} names no version)",
                    dir.join(ecom_model::CURRENT).display()
                )),
                ..Default::default()
            };
        };
        let reference: ecom_model::drift::Reference =
            match ecom_model::read_json(&dir.join(&version), ecom_model::REFERENCE_FILE) {
                Ok(r) => r,
                Err(e) => {
                    return PanelData {
                        empty: true,
                        message: Some(format!(
                            "the serving model {version} has no training bins to compare with (train it again): {e:#}"
                        )),
                        ..Default::default()
                    }
                }
            };
        let (from, to) = range.bounds(now_ms());
        let mut data = self.search_body(panel, &drift::body(panel.body_for(from, to), &reference)).await;
        if data.error.is_none() && !data.empty {
            let (rows, headline) = drift::rows(&data.rows, &reference, &version);
            data.rows = rows;
            data.headline = Some(headline);
        }
        data
    }

    async fn search_body(&self, panel: &Panel, body: &Value) -> PanelData {
        let url = self.search_url(panel);
        let started = Instant::now();
        let answer = self.http.post(&url).timeout(self.cfg.query_timeout).json(body).send().await;
        let not_answering = |e: String| PanelData {
            error: Some(format!("Elasticsearch at {} is not answering: {e}", self.cfg.es_url)),
            ..Default::default()
        };
        let resp = match answer {
            Ok(r) => r,
            Err(e) => return not_answering(e.to_string()),
        };
        let status = resp.status();
        let v: Value = match resp.json().await {
            Ok(v) => v,
            Err(e) => return not_answering(e.to_string()),
        };
        if !status.is_success() {
            // "all shards failed" says little: the first shard's own reason says what.
            let why = ["/error/failed_shards/0/reason/reason", "/error/root_cause/0/reason", "/error/reason"]
                .iter()
                .find_map(|p| v.pointer(p).and_then(Value::as_str))
                .unwrap_or("no reason given");
            tracing::warn!(panel = %panel.id, %status, why, "panel search failed");
            return PanelData {
                error: Some(format!("Elasticsearch refused the search of panel {} ({status}): {why}", panel.id)),
                ..Default::default()
            };
        }
        let total = v.pointer("/hits/total/value").and_then(Value::as_u64).unwrap_or(0);
        tracing::debug!(panel = %panel.id, ms = started.elapsed().as_millis() as u64, total, "panel searched");
        let mut out = PanelData {
            rows: panel.rows(&v),
            took_ms: v.get("took").and_then(Value::as_u64),
            total_hits: Some(total),
            ..Default::default()
        };
        if total == 0 {
            out.empty = true;
            out.message = Some(format!(
                "no data yet in {} for this time range — run dev/demo, or pick a longer range",
                panel.index_in(&self.cfg.index_stem)
            ));
        }
        out
    }
}

async fn index() -> Html<&'static str> {
    Html(embedded::INDEX_HTML)
}

async fn asset(Path(name): Path<String>) -> Response {
    let Some((_, bytes)) = embedded::ASSETS.iter().find(|(n, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let kind = if name.ends_with(".js") {
        "text/javascript; charset=utf-8"
    } else if name.ends_with(".css") {
        "text/css; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "max-age=300")], *bytes).into_response()
}

async fn list_panels(State(s): State<Arc<AppState>>) -> Json<Vec<Panel>> {
    Json(s.panels.clone())
}

async fn panel_data(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<DataQuery>,
) -> Result<Json<PanelData>, (StatusCode, String)> {
    let panel = s.panels.iter().find(|p| p.id == id).ok_or((StatusCode::NOT_FOUND, format!("no panel {id}")))?;
    Ok(Json(s.panel_data(panel, q.range.unwrap_or(Range::Day)).await))
}

async fn es_health(State(s): State<Arc<AppState>>) -> Json<Value> {
    let url = format!("{}/_cluster/health", s.cfg.es_url.without_credentials().trim_end_matches('/'));
    let es = match s.http.get(url).timeout(s.cfg.query_timeout).send().await {
        Ok(r) if r.status().is_success() => "ok".to_string(),
        Ok(r) => format!("down: HTTP {}", r.status()),
        Err(e) => format!("down: {e}"),
    };
    Json(json!({"elasticsearch": es}))
}

/// The dashboard's routes: `/`, `/assets/<name>`, `/api/panels`, `/api/panels/<id>/data?range=`,
/// `/api/health` (Elasticsearch), `/health` (this process).
pub fn router(cfg: DashConfig) -> anyhow::Result<Router> {
    let panels = Panel::all()?;
    // Elasticsearch is the only server this client calls, so its credentials ride on every request.
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(auth) = cfg.es_url.basic_auth() {
        let mut v = reqwest::header::HeaderValue::from_str(&auth)?;
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    let http = reqwest::Client::builder().default_headers(headers).build()?;
    let redis = match &cfg.redis_ca_pem {
        Some(ca) => redis::Client::build_with_tls(
            cfg.redis_url.expose(),
            redis::TlsCertificates { client_tls: None, root_cert: Some(ca.clone()) },
        ),
        None => redis::Client::open(cfg.redis_url.expose()),
    }
    .map_err(|e| anyhow::anyhow!("bad Redis URL {}: {e}", cfg.redis_url))?;
    let state = Arc::new(AppState { cfg, http, redis, panels });
    Ok(Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset))
        .route("/api/panels", get(list_panels))
        .route("/api/panels/{id}/data", get(panel_data))
        .route("/api/health", get(es_health))
        .route("/health", get(|| async { "ok" }))
        .with_state(state))
}

/// Serves the dashboard until `shutdown` resolves.
pub async fn run(cfg: DashConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let addr = cfg.addr;
    let app = router(cfg)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding {addr}: {e} (is another ecom dashboard running?)"))?;
    tracing::info!(%addr, "ecom dashboard on http://{addr}/");
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
