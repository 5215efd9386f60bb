//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The process can do its work: database reachable, consumer not failing.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200), (status = 503, description = "not ready; `reasons` says why")))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let mut reasons = Vec::new();
    if let Err(error) = state.store.ping().await {
        reasons.push(format!("database: {error}"));
    }
    if let Some(error) = state.engine_health.last_error() {
        reasons.push(format!("event consumer: {error}"));
    }
    // Kafka being down does not make the daemon unready: REST and routes keep working and
    // events wait in the outbox. The state is reported for operators and alerts.
    let kafka = state.relay_health.as_ref().map(|health| {
        json!({
            "connected": health.broker_error().is_none(),
            "error": health.broker_error(),
            "outboxBacklog": health.backlog(),
        })
    });
    if reasons.is_empty() {
        let mut body = json!({"status": "ready"});
        if let Some(kafka) = kafka {
            body["kafka"] = kafka;
        }
        (StatusCode::OK, Json(body))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reasons": reasons})),
        )
    }
}
