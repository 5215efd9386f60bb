//! `POST /api/events/{topic}`: submit an event to the bus.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::api_key::ApiKey;
use super::error::{ApiError, FieldError};
use super::json::ApiJson;
use super::path::ApiPath;
use super::AppState;
use crate::engine::log_committed;
use crate::event::{Delivery, EventError, SubmittedEvent};
use crate::store::dead_letters;

/// The answer to an accepted event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// The event's id (the one sent, or the one given to it).
    pub event_id: String,
}

fn field_of(error: &EventError) -> &'static str {
    match error {
        EventError::InvalidTopic(_) => "topic",
        EventError::InvalidEventType(_) => "eventType",
        EventError::InvalidTimestamp(_) => "timestamp",
        EventError::InvalidKey => "key",
        EventError::InvalidEventId => "eventId",
    }
}

/// With `unrouted: refuse`, refuses an event that no route's trigger matches (its `when:`
/// aside), naming the routes' topic it may have meant.
fn refuse_unrouted(
    routes: &crate::route::RouteSet,
    event: &crate::event::Event,
) -> Result<(), ApiError> {
    let (topic, event_type) = (event.topic.as_str(), event.envelope.event_type.as_str());
    if routes.matching(topic, event_type).next().is_some() {
        return Ok(());
    }
    let read: Vec<&str> = routes
        .routes
        .iter()
        .filter_map(|route| match &route.trigger.kind {
            crate::route::trigger::TriggerKind::Events { topic, .. } => Some(topic.as_str()),
            crate::route::trigger::TriggerKind::Schedule(_) => None,
        })
        .collect();
    let hint = crate::route::diagnostic::did_you_mean(topic, read.iter().copied())
        .map(|meant| format!(" (did you mean topic {meant}?)"))
        .unwrap_or_default();
    let message = format!(
        "no route reads {event_type} on topic {topic}{hint}; unrouted events are refused here (unrouted: refuse)"
    );
    Err(ApiError::Unprocessable {
        message: message.clone(),
        fields: vec![FieldError {
            field: "topic".into(),
            message,
        }],
    })
}

/// Validates and appends the event; 202 once it is durably in the log.
#[utoipa::path(post, path = "/api/events/{topic}", tag = "operations",
    security(("api_key" = []), ("bearer" = [])),
    params(("topic" = String, Path, description = "e.g. user.events")),
    request_body(content = serde_json::Value, description = "an envelope: eventType, data, and optionally eventId, timestamp, source, key"),
    responses((status = 202, body = Accepted, description = "durably in the log"),
        (status = 422, description = "data fails the event's schema (`fields` says where), or, with `unrouted: refuse`, no route reads the event")))]
pub async fn submit(
    State(state): State<AppState>,
    ApiPath(topic): ApiPath<String>,
    _key: ApiKey,
    ApiJson(submitted): ApiJson<SubmittedEvent>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let event = submitted
        .into_event(&topic)
        .map_err(|error| ApiError::BadRequest {
            message: error.to_string(),
            fields: vec![FieldError {
                field: field_of(&error).into(),
                message: error.to_string(),
            }],
        })?;
    let routes = state.routes.load();
    if state.unrouted == crate::config::Unrouted::Refuse {
        refuse_unrouted(&routes, &event)?;
    }
    if let Err(errors) = routes.schemas.validate(
        event.topic.as_str(),
        &event.envelope.event_type,
        &event.envelope.data,
    ) {
        let fields = errors
            .iter()
            .map(|error| match error.split_once(": ") {
                Some((field, message)) => FieldError {
                    field: field.into(),
                    message: message.into(),
                },
                None => FieldError {
                    field: "data".into(),
                    message: error.clone(),
                },
            })
            .collect();
        let message = format!(
            "{} on {} does not match schemas/{}/{}.json",
            event.envelope.event_type, event.topic, event.topic, event.envelope.event_type
        );
        // Kept like any refused event, so it can be inspected (and replayed once the schema or
        // the producer is fixed); the caller also learns at once through the 422.
        let error = format!("event fails its schema: {}", errors.join("; "));
        let mut transaction = state.store.begin().await?;
        dead_letters::refuse(
            &mut transaction,
            &Delivery::submitted(&event),
            Some(dead_letters::STAGE_SUBMIT),
            &error,
        )
        .await?;
        transaction.commit().await?;
        return Err(ApiError::Unprocessable { message, fields });
    }
    let appended = state.appender.append(event.clone()).await?;
    if appended {
        state.log_signal.notify_one();
        log_committed(std::slice::from_ref(&event));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            event_id: event.envelope.event_id,
        }),
    ))
}
