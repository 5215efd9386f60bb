//! `crm-router simulate`: what the routes would do with one event. The matching routes run as
//! a guarded attempt of the engine runs them (each in a savepoint, the first failing step
//! stopping its route), on one transaction that is always rolled back, with every step's
//! rendering traced and `http` steps not sent ([`HttpMode::DryRun`]). Nothing is appended to
//! the event log, no position moves and no dead letter is written.

use serde::Serialize;
use thiserror::Error;

use crate::action::{run_steps, HttpMode, Rendered, Run, Scope, StepTrace, Trace};
use crate::event::{Event, EventError, SubmittedEvent};
use crate::route::{Route, RouteSet};
use crate::store::db::Conn;
use crate::store::{Store, StoreError};

/// Why an event cannot be simulated: what `POST /api/events` would refuse, and a file that
/// holds no event.
#[derive(Debug, Error)]
pub enum EventRefused {
    /// Not JSON.
    #[error("the event is not JSON: {0}")]
    NotJson(serde_json::Error),
    /// JSON, but not an object.
    #[error("the event must be a JSON object with topic, eventType and data")]
    NotAnObject,
    /// No topic in the event and none given.
    #[error("topic: the event has no topic; write \"topic\" in it or pass --topic")]
    NoTopic,
    /// `topic` is there but no string.
    #[error("topic: must be a string")]
    TopicNotText,
    /// A field is missing, unknown or of the wrong type.
    #[error("{0}")]
    Shape(serde_json::Error),
    /// A field's value is refused.
    #[error("{0}")]
    Invalid(#[from] EventError),
    /// `data` fails the event's schema.
    #[error("{event_type} on {topic} does not match schemas/{topic}/{event_type}.json: {}", .errors.join("; "))]
    Schema {
        /// Topic.
        topic: String,
        /// Event type.
        event_type: String,
        /// Each violation, `data<json pointer>: message`.
        errors: Vec<String>,
    },
}

/// Reads an event as `crm-router simulate --event` takes it: what `POST /api/events/{topic}`
/// takes, with the topic as `topic` in it, or as `topic` here (which wins). Defaults are filled
/// in and every field is checked as the endpoint does; the schema is [`check_schema`]'s.
pub fn parse_event(text: &str, topic: Option<&str>) -> Result<Event, EventRefused> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(EventRefused::NotJson)?;
    let serde_json::Value::Object(mut fields) = value else {
        return Err(EventRefused::NotAnObject);
    };
    let written = match fields.remove("topic") {
        None => None,
        Some(serde_json::Value::String(topic)) => Some(topic),
        Some(_) => return Err(EventRefused::TopicNotText),
    };
    let topic = match (topic, written) {
        (Some(topic), _) => topic.to_owned(),
        (None, Some(topic)) => topic,
        (None, None) => return Err(EventRefused::NoTopic),
    };
    let submitted: SubmittedEvent =
        serde_json::from_value(serde_json::Value::Object(fields)).map_err(EventRefused::Shape)?;
    Ok(submitted.into_event(&topic)?)
}

/// Checks the event's `data` against its schema in `routes`, as `POST /api/events` does.
pub fn check_schema(routes: &RouteSet, event: &Event) -> Result<(), EventRefused> {
    let (topic, event_type) = (event.topic.as_str(), &event.envelope.event_type);
    routes
        .schemas
        .validate(topic, event_type, &event.envelope.data)
        .map_err(|errors| EventRefused::Schema {
            topic: topic.to_owned(),
            event_type: event_type.clone(),
            errors,
        })
}

/// What the routes did with one event, undone.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Simulation {
    /// The event, with its defaults filled in.
    pub event: SimulatedEvent,
    /// Each route whose trigger accepts the event, in the order the engine runs them.
    pub routes: Vec<RouteSimulation>,
    /// Always true: the transaction was rolled back.
    pub rolled_back: bool,
}

impl Simulation {
    /// Whether any route failed (the daemon would retry or dead-letter it).
    pub fn failed(&self) -> bool {
        self.routes
            .iter()
            .any(|route| matches!(route.outcome, RouteOutcome::Failed { .. }))
    }
}

/// The event simulated.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulatedEvent {
    /// Topic.
    pub topic: String,
    /// Key.
    pub key: String,
    /// The envelope.
    #[serde(flatten)]
    pub envelope: crate::event::Envelope,
}

/// One route's run.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteSimulation {
    /// Its name.
    pub name: String,
    /// The file it is defined in.
    pub file: String,
    /// Whether its `on.when:` held; `None` when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<bool>,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: RouteOutcome,
    /// Its steps, as they ran (with those skipped by their `when:`).
    pub steps: Vec<StepTrace>,
    /// The events it emitted, when it applied (what the engine would append at the commit).
    #[serde(skip)]
    pub emitted: Vec<Event>,
}

/// How a route's run ended.
#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum RouteOutcome {
    /// Its steps ran to the end.
    Applied,
    /// Its `on.when:` did not hold: nothing ran.
    Skipped,
    /// A step (or its `on.when:`) failed; its effects were undone, and the daemon would retry
    /// the event or dead-letter the route.
    #[serde(rename_all = "camelCase")]
    Failed {
        /// The failing step's path; `None` when `on.when:` failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        step: Option<String>,
        /// What failed.
        error: String,
        /// Whether the daemon would try again (a transient failure, before its retry budget
        /// is spent) rather than dead-letter at once.
        retryable: bool,
    },
}

/// Runs the routes that read `event` on `store`, in one transaction that is rolled back
/// whatever happens, with `http` steps rendered and not sent.
pub async fn simulate(
    store: &Store,
    routes: &RouteSet,
    event: &Event,
) -> Result<Simulation, StoreError> {
    let mut transaction = store.begin().await?;
    let simulated = run_routes(&mut transaction, routes, event, HttpMode::DryRun).await;
    transaction.rollback().await?;
    Ok(Simulation {
        event: SimulatedEvent {
            topic: event.topic.to_string(),
            key: event.key.clone(),
            envelope: event.envelope.clone(),
        },
        routes: simulated?,
        rolled_back: true,
    })
}

/// Runs every route whose trigger accepts `event` on `connection`, each in a savepoint as the
/// engine's guarded attempt does, tracing their steps. A failing route is rolled back to its
/// savepoint and the next one runs. The caller owns the transaction, and what it keeps.
pub async fn run_routes(
    connection: &mut Conn<'_>,
    routes: &RouteSet,
    event: &Event,
    http: HttpMode<'_>,
) -> Result<Vec<RouteSimulation>, sqlx::Error> {
    let start = Scope::new(event, routes.env.clone());
    let mut simulated = Vec::new();
    for route in routes.matching(event.topic.as_str(), &event.envelope.event_type) {
        let run = run_route(connection, routes, route, event, start.clone(), http).await?;
        simulated.push(run);
    }
    Ok(simulated)
}

/// Runs `route` for `event` on `connection` in a savepoint, tracing its steps (see
/// [`run_routes`]); a scheduled route takes its `SCHEDULE` event.
pub async fn run_route(
    connection: &mut Conn<'_>,
    routes: &RouteSet,
    route: &Route,
    event: &Event,
    mut scope: Scope,
    http: HttpMode<'_>,
) -> Result<RouteSimulation, sqlx::Error> {
    let mut simulated = RouteSimulation {
        name: route.name.to_string(),
        file: route.file.display().to_string(),
        when: None,
        outcome: RouteOutcome::Applied,
        steps: Vec::new(),
        emitted: Vec::new(),
    };
    if let Some(condition) = &route.trigger.when {
        match routes.templates.test(condition, &scope.context()) {
            Ok(held) => simulated.when = Some(held),
            Err(error) => {
                simulated.outcome = RouteOutcome::Failed {
                    step: None,
                    error: format!("on.when: {error}"),
                    retryable: false,
                };
                return Ok(simulated);
            }
        }
        if simulated.when == Some(false) {
            simulated.outcome = RouteOutcome::Skipped;
            return Ok(simulated);
        }
    }
    let mut savepoint = connection.begin().await?;
    let mut trace = Trace::default();
    // What the route emits is traced at its steps; the engine would append it at the commit,
    // which a simulation never reaches.
    let mut emitted = Vec::new();
    let result = {
        let mut run = Run {
            connection: &mut savepoint,
            templates: &routes.templates,
            schemas: &routes.schemas,
            http,
            event,
            route: &route.name,
            metrics: &route.metrics,
            emitted: &mut emitted,
            folds: None,
            trace: Some(&mut trace),
        };
        run_steps(&mut run, &route.steps, &mut scope).await
    };
    match result {
        Ok(()) => {
            savepoint.commit().await?;
            simulated.emitted = emitted;
        }
        Err(failure) => {
            savepoint.rollback().await?;
            let policy = failure.retry.unwrap_or(route.retry);
            simulated.outcome = RouteOutcome::Failed {
                step: Some(failure.path),
                error: failure.error.to_string(),
                retryable: failure.error.is_retryable() && policy.attempts > 1,
            };
        }
    }
    simulated.steps = trace.into_steps();
    for step in &mut simulated.steps {
        if let Some(Rendered::Emit(emit)) = &mut step.rendered {
            emit.read_by = routes
                .matching(&emit.topic, &emit.event_type)
                .map(|route| route.name.to_string())
                .collect();
        }
    }
    Ok(simulated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db;
    use crate::test_project::load_project;

    /// Nothing listens on port 1: a request sent there fails the route.
    const ROUTES: &str = r#"routes:
  - name: record
    on: {topic: test.events}
    actions:
      - insert: {table: items, values: {id: "{{ data.id }}"}}
      - http: {url: "http://127.0.0.1:1/hook", body: {id: "{{ data.id }}"}, as: hook}
      - emit: {topic: test.out, eventType: DONE, key: "{{ data.id }}", data: {hook: "{{ steps.hook }}"}}
      - insert: {table: items, values: {id: "{{ data.id }}"}}
  - name: after
    on: {topic: test.events, when: "data.id != 'skip'"}
    actions:
      - insert: {table: items, values: {id: "{{ data.id }}-after"}}
"#;

    #[tokio::test]
    async fn a_simulation_sends_nothing_shows_each_failure_at_its_step_and_rolls_back() {
        let project = load_project(&[
            ("routes/test.yaml", ROUTES),
            (
                "migrations/20270101000000_items.sql",
                "CREATE TABLE items (id TEXT PRIMARY KEY);",
            ),
        ])
        .await;
        let event = parse_event(
            r#"{"topic": "test.events", "eventType": "X", "data": {"id": "a"}}"#,
            None,
        )
        .unwrap();
        let simulation = simulate(&project.store, &project.routes, &event)
            .await
            .unwrap();
        assert!(simulation.failed());
        let record = &simulation.routes[0];
        // The request was rendered, not sent (it could not have been), and `as:` is null.
        let Some(Rendered::Http(http)) = &record.steps[1].rendered else {
            panic!("{record:?}");
        };
        assert!(!http.sent);
        assert_eq!(http.body, Some(serde_json::json!({"id": "a"})));
        let Some(Rendered::Emit(emit)) = &record.steps[2].rendered else {
            panic!("{record:?}");
        };
        assert_eq!(emit.data, serde_json::json!({"hook": null}));
        // The second insert of the same id breaks the primary key, at step 3.
        assert!(
            matches!(&record.outcome, RouteOutcome::Failed { step: Some(step), .. } if step == "3")
        );
        let error = record.steps[3].error.as_deref().unwrap();
        assert!(error.contains("UNIQUE"), "{error}");
        assert_eq!(
            record
                .steps
                .iter()
                .filter(|step| step.error.is_some())
                .count(),
            1
        );
        // The next route ran after the failing one was undone.
        assert_eq!(simulation.routes[1].when, Some(true));
        assert!(matches!(
            simulation.routes[1].outcome,
            RouteOutcome::Applied
        ));
        let rows: (i64,) = db::query("SELECT COUNT(*) FROM items")
            .fetch_one_as(project.store.reader())
            .await
            .unwrap();
        assert_eq!(rows.0, 0, "rolled back");
    }

    #[test]
    fn an_event_file_is_read_like_a_submission_with_its_topic() {
        let event = parse_event(
            r#"{"topic": "orders", "eventType": "PLACED", "data": {"id": 1}, "key": "k"}"#,
            None,
        )
        .unwrap();
        assert_eq!(
            (
                event.topic.as_str(),
                event.key.as_str(),
                event.envelope.source.as_str()
            ),
            ("orders", "k", "api")
        );
        let given = parse_event(
            r#"{"topic": "orders", "eventType": "PLACED", "data": {}}"#,
            Some("other"),
        );
        assert_eq!(given.unwrap().topic.as_str(), "other", "--topic wins");
        let refusal = |text: &str| parse_event(text, None).unwrap_err().to_string();
        assert_eq!(refusal("[1]"), EventRefused::NotAnObject.to_string());
        assert_eq!(
            refusal(r#"{"topic": 5, "eventType": "A", "data": {}}"#),
            "topic: must be a string"
        );
        assert!(
            refusal(r#"{"topic": "bad topic", "eventType": "A", "data": {}}"#)
                .starts_with("topic \"bad topic\" is not a valid topic name")
        );
        assert!(refusal(r#"{"topic": "t", "eventType": "A"}"#).contains("missing field `data`"));
        assert!(refusal("{").starts_with("the event is not JSON"));
    }
}
