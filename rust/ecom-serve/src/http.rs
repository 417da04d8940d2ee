//! HTTP side of `ecom serve`: /health (JSON, 503 when a dependency is down) and /metrics.
use crate::guard::Guard;
use axum::{extract::State, http::StatusCode, routing::get, Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;

#[derive(Clone)]
struct AppState {
    metrics: PrometheusHandle,
    guard: Guard,
}

pub(crate) fn router(metrics: PrometheusHandle, guard: Guard) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(|State(s): State<AppState>| async move { s.metrics.render() }))
        .with_state(AppState { metrics, guard })
}

async fn health(State(s): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let redis = s.guard.redis_ok().await;
    let code = if redis { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({
        "status": if redis { "ok" } else { "degraded" },
        "redis": if redis { "ok" } else { "unreachable: guard answers with the fallback verdict" },
        "version": env!("CARGO_PKG_VERSION"),
    });
    (code, Json(body))
}
