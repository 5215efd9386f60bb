//! `/api/dlq`: inspect, replay and discard dead letters. Operator endpoints: the API key or an
//! ADMIN's token.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api_key::ApiKey;
use super::crm::ApiQuery;
use super::error::ApiError;
use super::json::ApiJson;
use super::listing::{ListBody, Listed, PageParams};
use super::path::ApiPath;
use super::AppState;
use crate::crm::JsonPage;
use crate::engine::replay::{ReplayError, ReplayOutcome, Replayer};
use crate::store::dead_letters::{self, DeadLetter, Filter, Status};

/// Which dead letters: every field narrows the selection.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeadLetterSelection {
    /// Only this route's.
    pub route: Option<String>,
    /// Only this event type's.
    pub event_type: Option<String>,
    /// Last failed at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Last failed before this time (RFC 3339).
    pub until: Option<String>,
    /// PENDING, REPLAYED or DISCARDED (a list shows all by default; a bulk replay takes only
    /// PENDING ones).
    pub status: Option<String>,
}

/// Query of `GET /api/dlq`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DeadLetterListParams {
    /// Only this route's.
    pub route: Option<String>,
    /// Only this event type's.
    pub event_type: Option<String>,
    /// Last failed at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Last failed before this time (RFC 3339).
    pub until: Option<String>,
    /// PENDING, REPLAYED or DISCARDED.
    pub status: Option<String>,
}

impl DeadLetterSelection {
    fn filter(self) -> Result<Filter, ApiError> {
        let mut problems = Vec::new();
        for (field, value) in [("since", &self.since), ("until", &self.until)] {
            if let Some(value) = value {
                if chrono::DateTime::parse_from_rfc3339(value).is_err() {
                    problems.push(super::error::FieldError {
                        field: field.into(),
                        message: format!(
                            "{value:?} is not an RFC 3339 time such as 2026-11-29T10:00:00Z"
                        ),
                    });
                }
            }
        }
        let status = match &self.status {
            None => None,
            Some(text) => match Status::parse(text) {
                Some(status) => Some(status),
                None => {
                    problems.push(super::error::FieldError {
                        field: "status".into(),
                        message: format!("{text:?} is not PENDING, REPLAYED or DISCARDED"),
                    });
                    None
                }
            },
        };
        if !problems.is_empty() {
            return Err(ApiError::BadRequest {
                message: "invalid dead-letter selection".into(),
                fields: problems,
            });
        }
        Ok(Filter {
            route: self.route,
            event_type: self.event_type,
            since: self.since.as_deref().and_then(dead_letters::stored_time),
            until: self.until.as_deref().and_then(dead_letters::stored_time),
            status,
        })
    }
}

fn replayer(state: &AppState) -> Replayer {
    Replayer::new(
        state.store.clone(),
        state.routes.clone(),
        state.log_signal.clone(),
    )
}

fn replay_error(error: ReplayError) -> ApiError {
    match error {
        ReplayError::NotFound(_) => ApiError::NotFound(error.to_string()),
        ReplayError::NotPending { .. }
        | ReplayError::RouteGone { .. }
        | ReplayError::AlreadyInLog(_)
        | ReplayError::AlreadyReplayed(_)
        | ReplayError::Unreplayable(_) => ApiError::Conflict(error.to_string()),
        ReplayError::Interrupted(_) => ApiError::RouteFailed(error.to_string()),
        ReplayError::Store(error) => ApiError::from(error),
    }
}

fn outcome_json(id: &str, outcome: &ReplayOutcome) -> Value {
    match outcome {
        ReplayOutcome::Applied { emitted } => {
            json!({"id": id, "outcome": "applied", "emitted": emitted})
        }
        ReplayOutcome::FailedAgain { error } => {
            json!({"id": id, "outcome": "failed_again", "error": error})
        }
        ReplayOutcome::Requeued => json!({"id": id, "outcome": "requeued"}),
    }
}

/// Dead letters, newest failure first.
#[utoipa::path(get, path = "/api/dlq", tag = "dead letters",
    security(("api_key" = []), ("bearer" = [])),
    params(PageParams, DeadLetterListParams),
    responses((status = 200, body = ListBody<Value>, headers(("x-total-count" = i64))), (status = 400), (status = 401), (status = 403)))]
pub async fn list(
    State(state): State<AppState>,
    _key: ApiKey,
    ApiQuery(asked): ApiQuery<PageParams>,
    ApiQuery(params): ApiQuery<DeadLetterListParams>,
) -> Result<Listed<DeadLetter>, ApiError> {
    let paging = asked.paging()?;
    let filter = DeadLetterSelection {
        route: params.route,
        event_type: params.event_type,
        since: params.since,
        until: params.until,
        status: params.status,
    }
    .filter()?;
    let (items, total) =
        dead_letters::list(state.store.reader(), &filter, paging.limit, paging.offset).await?;
    let page = JsonPage::serialized(&items, total)
        .map_err(|error| ApiError::Internal(format!("cannot serialise dead letters: {error}")))?;
    Ok(Listed::new(page, paging))
}

/// One dead letter.
#[utoipa::path(get, path = "/api/dlq/{id}", tag = "dead letters",
    security(("api_key" = []), ("bearer" = [])),
    params(("id" = String, Path, description = "the dead letter's id")),
    responses((status = 200, body = Value), (status = 401), (status = 403), (status = 404)))]
pub async fn show(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    _key: ApiKey,
) -> Result<Json<DeadLetter>, ApiError> {
    dead_letters::get(state.store.reader(), &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no dead letter {id}")))
}

/// Replays one dead letter with the routes as they are now. 200 with `outcome` `applied`,
/// `failed_again` (a new dead letter holds the failure) or `requeued` (back in the Kafka
/// outbox); 409 when it is not pending or its route no longer handles the event.
#[utoipa::path(post, path = "/api/dlq/{id}/replay", tag = "dead letters",
    security(("api_key" = []), ("bearer" = [])),
    params(("id" = String, Path, description = "the dead letter's id")),
    responses((status = 200, body = Value), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn replay(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    _key: ApiKey,
) -> Result<Json<Value>, ApiError> {
    let outcome = replayer(&state).replay(&id).await.map_err(replay_error)?;
    Ok(Json(outcome_json(&id, &outcome)))
}

/// Marks one pending dead letter `DISCARDED` (it is kept for the record).
#[utoipa::path(post, path = "/api/dlq/{id}/discard", tag = "dead letters",
    security(("api_key" = []), ("bearer" = [])),
    params(("id" = String, Path, description = "the dead letter's id")),
    responses((status = 200, body = Value), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn discard(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    _key: ApiKey,
) -> Result<Json<Value>, ApiError> {
    replayer(&state).discard(&id).await.map_err(replay_error)?;
    Ok(Json(
        json!({"id": id, "status": Status::Discarded.as_str()}),
    ))
}

/// Replays every pending dead letter the selection names, oldest first. 200 with the counts
/// and each letter's outcome; letters another operator settled meanwhile count as `skipped`.
#[utoipa::path(post, path = "/api/dlq/replay", tag = "dead letters",
    security(("api_key" = []), ("bearer" = [])),
    request_body = DeadLetterSelection,
    responses((status = 200, body = Value), (status = 400), (status = 401), (status = 403)))]
pub async fn replay_all(
    State(state): State<AppState>,
    _key: ApiKey,
    ApiJson(selection): ApiJson<DeadLetterSelection>,
) -> Result<Json<Value>, ApiError> {
    if selection.status.is_some() {
        return Err(ApiError::BadRequest {
            message: "a bulk replay takes only PENDING dead letters".into(),
            fields: vec![super::error::FieldError {
                field: "status".into(),
                message: "leave it out".into(),
            }],
        });
    }
    let mut filter = selection.filter()?;
    filter.status = Some(Status::Pending);
    let ids = dead_letters::ids(state.store.reader(), &filter).await?;
    let replayer = replayer(&state);
    let (mut applied, mut failed_again, mut requeued, mut skipped) = (0, 0, 0, 0);
    let mut results = Vec::with_capacity(ids.len());
    for id in &ids {
        match replayer.replay(id).await {
            Ok(outcome) => {
                match outcome {
                    ReplayOutcome::Applied { .. } => applied += 1,
                    ReplayOutcome::FailedAgain { .. } => failed_again += 1,
                    ReplayOutcome::Requeued => requeued += 1,
                }
                results.push(outcome_json(id, &outcome));
            }
            Err(ReplayError::Store(error)) => return Err(ApiError::from(error)),
            Err(error) => {
                skipped += 1;
                results.push(json!({"id": id, "outcome": "skipped", "error": error.to_string()}));
            }
        }
    }
    Ok(Json(json!({
        "applied": applied,
        "failedAgain": failed_again,
        "requeued": requeued,
        "skipped": skipped,
        "results": results,
    })))
}
