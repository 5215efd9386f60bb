//! `GET /api/routes` (what is loaded and how the last reload went), `POST /api/routes/reload`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::api_key::ApiKey;
use super::error::ApiError;
use super::AppState;
use crate::reload::Signal;
use crate::route::trigger::TriggerKind;

/// Lists routes with their triggers and actions.
pub async fn list(State(state): State<AppState>, _key: ApiKey) -> Result<Json<Value>, ApiError> {
    let routes = state.routes.load();
    let listed: Vec<Value> = routes
        .routes
        .iter()
        .map(|route| {
            let mut listed = json!({
                "name": route.name,
                "description": route.description,
                "file": route.file.display().to_string(),
            });
            match &route.trigger.kind {
                TriggerKind::Events { topic, types } => {
                    listed["topic"] = json!(topic.as_str());
                    listed["eventTypes"] = json!(types.names());
                }
                TriggerKind::Schedule(schedule) => listed["schedule"] = json!(schedule.as_str()),
            }
            listed["actions"] = route
                .steps
                .iter()
                .map(|step| json!({"kind": step.action.kind(), "summary": step.action.summary()}))
                .collect();
            listed
        })
        .collect();
    Ok(Json(
        json!({"routes": listed, "reload": state.reloader.status()}),
    ))
}

/// Asks the reload loop to reload; the outcome appears in `GET /api/routes`.
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
