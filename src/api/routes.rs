//! `GET /api/routes` (what is loaded and how the last reload went), `POST /api/routes/reload`,
//! `POST /api/routes/{name}/trigger` (run a scheduled route now).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::api_key::ApiKey;
use super::error::ApiError;
use super::path::ApiPath;
use super::AppState;
use crate::engine::schedule::{RunOutcome, Scheduler, TriggerError};
use crate::reload::Signal;
use crate::route::trigger::TriggerKind;

/// The answer to a reload request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadRequested {
    /// Always `reload requested`.
    pub status: &'static str,
}

/// What a triggered run did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerReport {
    /// The route's name.
    pub route: String,
    /// When it ran (RFC 3339).
    pub ran_at: String,
    /// Events the run emitted.
    pub emitted: usize,
    /// The route's `on.when` was false, so its steps did not run.
    pub skipped: bool,
}

/// Lists routes with their triggers and actions.
#[utoipa::path(get, path = "/api/routes", tag = "operations",
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = Value, description = "`{routes: [{name, description, file, topic, eventTypes | schedule, actions}], reload}`: the routes and the last reload's outcome")))]
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
#[utoipa::path(post, path = "/api/routes/reload", tag = "operations",
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 202, body = ReloadRequested)))]
pub async fn reload(
    State(state): State<AppState>,
    _key: ApiKey,
) -> Result<(StatusCode, Json<ReloadRequested>), ApiError> {
    let _ = state.reload_signals.try_send(Signal::Reload("api"));
    Ok((
        StatusCode::ACCEPTED,
        Json(ReloadRequested {
            status: "reload requested",
        }),
    ))
}

/// Runs a scheduled route now, as its next tick would (it counts as a run). 200 with the number
/// of events emitted; 404 for an unknown route, 409 for a route that runs on events, 500
/// `route_failed` with the failure when the run failed and was dead-lettered.
#[utoipa::path(post, path = "/api/routes/{name}/trigger", tag = "operations",
    security(("api_key" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "a scheduled route's name")),
    responses((status = 200, body = TriggerReport),
        (status = 404, description = "no route by this name"),
        (status = 409, description = "the route runs on events, not on a schedule"),
        (status = 500, description = "the run failed and was dead-lettered (`route_failed`)")))]
pub async fn trigger(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    _key: ApiKey,
) -> Result<Json<TriggerReport>, ApiError> {
    // A scheduler of its own rather than one kept in `AppState`: it is a few shared handles and
    // an HTTP client, cheap next to a route run, and runs share nothing else.
    let scheduler = Scheduler::new(
        state.store.clone(),
        state.routes.clone(),
        state.log_signal.clone(),
    );
    let report = scheduler
        .trigger(&name)
        .await
        .map_err(|error| match error {
            TriggerError::NoSuchRoute(_) => ApiError::NotFound(error.to_string()),
            TriggerError::NotScheduled(_) => ApiError::Conflict(error.to_string()),
            TriggerError::Store(error) => ApiError::from(error),
        })?;
    let (emitted, skipped) = match report.outcome {
        RunOutcome::Completed { emitted } => (emitted, false),
        RunOutcome::Skipped => (0, true),
        RunOutcome::Failed { error } => {
            return Err(ApiError::RouteFailed(format!(
                "route {name:?} failed and was dead-lettered: {error}"
            )))
        }
        // A manual run claims its tick unconditionally; kept for completeness.
        RunOutcome::ClaimedElsewhere => {
            return Err(ApiError::Conflict(format!(
                "route {name:?} was run by another daemon at the same moment"
            )))
        }
    };
    Ok(Json(TriggerReport {
        route: report.route,
        ran_at: report.ran_at,
        emitted,
        skipped,
    }))
}
