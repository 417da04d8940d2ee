//! HTTP side of `ecom serve`: /health (JSON, 503 when a dependency is down) and /metrics.
use crate::guard::Guard;
use crate::model::ModelStore;
use axum::{extract::State, http::StatusCode, routing::get, Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

#[derive(Clone)]
struct AppState {
    metrics: PrometheusHandle,
    guard: Guard,
    models: Arc<ModelStore>,
    version: String,
}

pub(crate) fn router(metrics: PrometheusHandle, guard: Guard, models: Arc<ModelStore>, version: String) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(|State(s): State<AppState>| async move { s.metrics.render() }))
        .with_state(AppState { metrics, guard, models, version })
}

async fn health(State(s): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let redis = s.guard.redis_ok().await;
    let model = s.models.get();
    let ok = redis && model.is_some();
    let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "degraded" },
        "redis": if redis { "ok" } else { "unreachable: guard answers with the fallback verdict" },
        "model": match &model {
            Some(m) => serde_json::json!({"version": m.version, "loaded_at_ms": m.loaded_at_ms,
                "feature_schema_hash": m.schema_hash, "recommend_sessions": m.recommend.len()}),
            None => serde_json::json!(format!("none: no loadable model in {} (run ecom train)", s.models.dir().display())),
        },
        "version": s.version,
    });
    (code, Json(body))
}
