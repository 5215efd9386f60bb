//! One event through the route set, inside the caller's transaction.

use std::time::Duration;

use sqlx::{AnyConnection, Connection};

use crate::action::{run_steps, Run, Scope};
use crate::event::{Event, TopicName};
use crate::route::{Route, RouteSet};
use crate::store::dead_letters::{self, NewDeadLetter};
use crate::store::log::{decode_envelope, LogRecord};
use crate::template::now_rfc3339;

/// The event must be tried again later; the caller rolls back everything it did.
#[derive(Debug, Clone)]
pub struct Retry {
    /// The route that failed (or `engine` for database failures around it).
    pub route: String,
    /// What failed.
    pub error: String,
    /// How long to wait.
    pub delay: Duration,
}

fn store_retry(error: sqlx::Error) -> Retry {
    Retry {
        route: "engine".into(),
        error: format!("database error: {error}"),
        delay: Duration::from_millis(500),
    }
}

/// Where a dead letter points.
struct Failure<'a> {
    route: Option<&'a str>,
    action_index: Option<&'a str>,
    action_kind: Option<&'a str>,
    error: String,
}

async fn dead_letter(
    connection: &mut AnyConnection,
    record: &LogRecord,
    event_id: &str,
    event_type: &str,
    failure: Failure<'_>,
    attempts: u32,
    first_failed_at: Option<&str>,
) -> Result<(), Retry> {
    let now = now_rfc3339();
    tracing::warn!(
        seq = record.seq,
        topic = %record.topic,
        event_type,
        route = failure.route.unwrap_or("-"),
        action = failure.action_index.unwrap_or("-"),
        attempts,
        error = %failure.error,
        "event dead-lettered"
    );
    dead_letters::insert(
        connection,
        &NewDeadLetter {
            event_id,
            topic: &record.topic,
            event_type,
            key: &record.key,
            envelope: &record.envelope,
            route: failure.route,
            action_index: failure.action_index,
            action_kind: failure.action_kind,
            error: &failure.error,
            attempts,
            first_failed_at: first_failed_at.unwrap_or(&now),
        },
    )
    .await
    .map_err(store_retry)?;
    Ok(())
}

/// Runs every matching route for `record`. Returns the events emitted (to log after commit),
/// or `Retry` when a route failed in a way worth retrying and has attempts left.
pub async fn handle_record(
    connection: &mut AnyConnection,
    record: &LogRecord,
    routes: &RouteSet,
    http: &reqwest::Client,
    attempt: u32,
    first_failed_at: Option<&str>,
) -> Result<Vec<Event>, Retry> {
    let refuse = |error: String| Failure {
        route: None,
        action_index: None,
        action_kind: None,
        error,
    };
    let envelope = match decode_envelope(&record.envelope) {
        Ok(envelope) => envelope,
        Err(error) => {
            let failure = refuse(format!("malformed event envelope: {error}"));
            dead_letter(
                connection,
                record,
                "",
                "",
                failure,
                attempt,
                first_failed_at,
            )
            .await?;
            return Ok(Vec::new());
        }
    };
    let (event_id, event_type) = (envelope.event_id.clone(), envelope.event_type.clone());
    let topic = match TopicName::parse(&record.topic) {
        Ok(topic) => topic,
        Err(error) => {
            dead_letter(
                connection,
                record,
                &event_id,
                &event_type,
                refuse(error.to_string()),
                attempt,
                first_failed_at,
            )
            .await?;
            return Ok(Vec::new());
        }
    };
    if attempt == 1 {
        tracing::info!(
            topic = %topic,
            event_id = %event_id,
            "📥 Event received: {} from topic {}",
            event_type,
            topic
        );
    }
    if let Err(errors) = routes
        .schemas
        .validate(topic.as_str(), &event_type, &envelope.data)
    {
        let failure = refuse(format!("event fails its schema: {}", errors.join("; ")));
        dead_letter(
            connection,
            record,
            &event_id,
            &event_type,
            failure,
            attempt,
            first_failed_at,
        )
        .await?;
        return Ok(Vec::new());
    }
    let event = Event {
        topic,
        key: record.key.clone(),
        envelope,
    };
    let mut emitted = Vec::new();
    for route in routes.matching(event.topic.as_str(), &event.envelope.event_type) {
        run_route(
            connection,
            record,
            &event,
            route,
            routes,
            http,
            attempt,
            first_failed_at,
            &mut emitted,
        )
        .await?;
    }
    Ok(emitted)
}

#[allow(clippy::too_many_arguments)]
async fn run_route(
    connection: &mut AnyConnection,
    record: &LogRecord,
    event: &Event,
    route: &Route,
    routes: &RouteSet,
    http: &reqwest::Client,
    attempt: u32,
    first_failed_at: Option<&str>,
    emitted: &mut Vec<Event>,
) -> Result<(), Retry> {
    let mut scope = Scope::new(event, routes.env.clone());
    let event_id = &event.envelope.event_id;
    let event_type = &event.envelope.event_type;
    if let Some(condition) = &route.trigger.when {
        match routes.templates.test(condition, &scope.context()) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(error) => {
                let failure = Failure {
                    route: Some(route.name.as_str()),
                    action_index: None,
                    action_kind: None,
                    error: format!("on.when: {error}"),
                };
                return dead_letter(
                    connection,
                    record,
                    event_id,
                    event_type,
                    failure,
                    attempt,
                    first_failed_at,
                )
                .await;
            }
        }
    }
    let mut savepoint = connection.begin().await.map_err(store_retry)?;
    let mut route_emitted = Vec::new();
    let result = {
        let mut run = Run {
            connection: &mut savepoint,
            templates: &routes.templates,
            schemas: &routes.schemas,
            http,
            event,
            route: &route.name,
            emitted: &mut route_emitted,
        };
        run_steps(&mut run, &route.steps, &mut scope).await
    };
    match result {
        Ok(()) => {
            savepoint.commit().await.map_err(store_retry)?;
            tracing::debug!(route = %route.name, event_id = %event_id, "route applied");
            emitted.extend(route_emitted);
            Ok(())
        }
        Err(failure) => {
            savepoint.rollback().await.map_err(store_retry)?;
            if failure.error.is_retryable() && attempt < route.retry.attempts {
                return Err(Retry {
                    route: route.name.to_string(),
                    error: failure.to_string(),
                    delay: route.retry.delay(attempt),
                });
            }
            let dead = Failure {
                route: Some(route.name.as_str()),
                action_index: Some(&failure.path),
                action_kind: Some(failure.kind),
                error: failure.error.to_string(),
            };
            dead_letter(
                connection,
                record,
                event_id,
                event_type,
                dead,
                attempt,
                first_failed_at,
            )
            .await
        }
    }
}
