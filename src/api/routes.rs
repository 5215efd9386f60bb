//! `GET /api/routes` (what is loaded and how the last reload went), `POST /api/routes/reload`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::api_key::ApiKey;
use super::error::ApiError;
use super::AppState;
use crate::reload::Signal;

/// Lists routes with their triggers and actions.
#[utoipa::path(get, path = "/api/routes", tag = "operations",
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, description = "routes and the last reload's outcome"), (status = 401), (status = 403)))]
pub async fn list(State(state): State<AppState>, _key: ApiKey) -> Result<Json<Value>, ApiError> {
    let routes = state.routes.load();
    let listed: Vec<Value> = routes
        .routes
        .iter()
        .map(|route| {
            json!({
                "name": route.name,
                "description": route.description,
                "file": route.file.display().to_string(),
                "topic": route.trigger.topic.as_str(),
                "eventTypes": route.trigger.types.names(),
                "actions": route.steps.iter().map(|step| json!({"kind": step.action.kind(), "summary": step.action.summary()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(
        json!({"routes": listed, "reload": state.reloader.status()}),
    ))
}

/// Asks the reload loop to reload; the outcome appears in `GET /api/routes`.
#[utoipa::path(post, path = "/api/routes/reload", tag = "operations",
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 202), (status = 401), (status = 403)))]
pub async fn reload(
    State(state): State<AppState>,
    _key: ApiKey,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let _ = state.reload_signals.try_send(Signal::Reload("api"));
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "reload requested"})),
    ))
}
