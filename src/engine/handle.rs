//! One delivered event through the route set, inside the caller's transaction.

use std::time::Duration;

use crate::store::db::Conn;

use crate::action::fold::Folds;
use crate::action::{run_steps, HttpMode, Run, Scope};
use crate::event::{Delivery, Event};
use crate::route::{Route, RouteSet};
use crate::store::dead_letters::{self, NewDeadLetter};
use crate::telemetry::RouteMetrics;
use crate::template::now_rfc3339;

/// Why handling an event stopped before it was done.
#[derive(Debug, Clone)]
pub enum Interrupt {
    /// A failure in an unguarded attempt (see [`Attempt::guarded`]), or something it would
    /// dead-letter: without savepoints nothing can be undone alone, so the caller rolls back
    /// its whole transaction and handles the events again guarded.
    Abandon {
        /// The route that failed (or `engine`).
        route: String,
        /// What failed.
        error: String,
    },
    /// The event must be tried again later, alone; the caller rolls back what it did.
    Retry(Retry),
}

impl Interrupt {
    /// The retry this stands for: a guarded attempt is never abandoned, and should one be,
    /// trying the event again alone (guarded) is the safe answer.
    pub fn into_retry(self) -> Retry {
        match self {
            Self::Retry(retry) => retry,
            Self::Abandon { route, error } => Retry {
                route,
                error,
                delay: Duration::ZERO,
            },
        }
    }
}

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

/// Which attempt at an event this is.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// 1 for the first.
    pub number: u32,
    /// When the first attempt failed; `None` on the first.
    pub first_failed_at: Option<&'a str>,
    /// False for a replay from the dead letters: a failure is dead-lettered again at once instead
    /// of being retried with backoff, since an operator is waiting for the answer.
    pub may_retry: bool,
    /// True: every route runs in a savepoint, so a failing route is undone alone and
    /// dead-lettered or retried. False (the consumer's first pass over a batch, for events
    /// without `http` routes): routes run without savepoints, the first failure (or anything
    /// that would be dead-lettered) returns [`Interrupt::Abandon`] with nothing written, and the caller must roll back its whole transaction and handle the events
    /// again guarded.
    pub guarded: bool,
}

impl Attempt<'static> {
    /// The first attempt at an event from the stream.
    pub fn first() -> Self {
        Self {
            number: 1,
            first_failed_at: None,
            may_retry: true,
            guarded: true,
        }
    }
}

/// What handling an event did, once no retry is needed. Nothing of it is counted or logged
/// until the caller's transaction commits ([`Handled::count`]), so a rolled-back attempt
/// counts nothing.
#[derive(Debug, Default)]
pub struct Handled {
    /// The event's `eventId` (empty when its envelope is malformed).
    pub event_id: String,
    /// Events the successful routes emitted, for the caller to append before it commits.
    pub emitted: Vec<Event>,
    /// The errors of what was dead-lettered instead of applied.
    pub dead_lettered: Vec<String>,
    /// How many routes ran (successfully or not).
    pub routes_run: usize,
    /// The series of the routes applied.
    pub applied: Vec<RouteMetrics>,
    /// The event's topic and type, which its counters are labelled with (`None` when it did not
    /// decode).
    pub labels: Option<(String, String)>,
    /// The first attempt at the event: it is counted and logged as received.
    pub first_attempt: bool,
    /// Its routes ran to their end, none dead-lettered: it is counted as routed.
    pub routed: bool,
    /// No route reads its topic and type: it is counted as unrouted, and warned about.
    pub unrouted: bool,
}

/// When an unrouted event was last warned about (seconds since the Unix epoch).
static LAST_UNROUTED_WARNING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Seconds between two warnings about unrouted events: a producer sending to a misspelt topic
/// sends many, and one line a minute says it as well as one line per event.
const UNROUTED_WARNING_EVERY: u64 = 60;

/// Warns that no route reads `event_type` on `topic`, at most once a minute.
fn warn_unrouted(topic: &str, event_type: &str) {
    use std::sync::atomic::Ordering;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let last = LAST_UNROUTED_WARNING.load(Ordering::Relaxed);
    let due = last == 0 || now.saturating_sub(last) >= UNROUTED_WARNING_EVERY;
    if due
        && LAST_UNROUTED_WARNING
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            topic = %topic,
            "no route reads {event_type} on topic {topic}: the event was recorded but nothing ran (a misspelt topic or type?); crm_router_events_unrouted_total counts such events, and this is said at most once a minute"
        );
    }
}

impl Handled {
    /// An event whose first attempt stopped for a retry: it was received, and nothing else
    /// of it holds yet.
    pub fn received(delivery: &Delivery) -> Self {
        let mut handled = Self::default();
        if let Ok(event) = &delivery.decoded {
            handled.event_id = event.envelope.event_id.clone();
            handled.labels = Some((event.topic.to_string(), event.envelope.event_type.clone()));
            handled.first_attempt = true;
        }
        handled
    }

    /// Counts (and logs) what the handling did, once the transaction that made it so has
    /// committed.
    pub fn count(&self) {
        if let Some((topic, event_type)) = &self.labels {
            if self.first_attempt {
                crate::telemetry::event_received(topic, event_type);
                tracing::info!(topic = %topic, event_id = %self.event_id, "📥 Event received: {event_type} from topic {topic}");
            }
            if self.routed {
                crate::telemetry::event_routed(topic, event_type);
            }
            if self.unrouted {
                crate::telemetry::event_unrouted(topic, event_type);
                warn_unrouted(topic, event_type);
            }
        }
        for route in &self.applied {
            route.applied();
        }
    }
}

fn store_retry(error: sqlx::Error) -> Interrupt {
    Interrupt::Retry(Retry {
        route: "engine".into(),
        error: format!("database error: {error}"),
        delay: Duration::from_millis(500),
    })
}

/// Where a dead letter points.
struct Failure<'a> {
    route: Option<&'a str>,
    action_index: Option<&'a str>,
    action_kind: Option<&'a str>,
    error: String,
}

/// The event, or one route of it, failed for good. A guarded attempt dead-letters it; an
/// unguarded one cannot undo one route alone, so it abandons the pass instead, and the
/// guarded pass that follows meets the same failure and dead-letters it.
async fn fail(
    connection: &mut Conn<'_>,
    delivery: &Delivery,
    failure: Failure<'_>,
    attempt: Attempt<'_>,
    handled: &mut Handled,
) -> Result<(), Interrupt> {
    if !attempt.guarded {
        return Err(Interrupt::Abandon {
            route: failure.route.unwrap_or("engine").to_owned(),
            error: failure.error,
        });
    }
    dead_letter(connection, delivery, failure, attempt, handled).await
}

/// Writes the dead letter of a failure.
async fn dead_letter(
    connection: &mut Conn<'_>,
    delivery: &Delivery,
    failure: Failure<'_>,
    attempt: Attempt<'_>,
    handled: &mut Handled,
) -> Result<(), Interrupt> {
    let now = now_rfc3339();
    let attempts = attempt.number;
    let event_type = delivery.event_type();
    tracing::warn!(
        origin = %delivery.origin,
        topic = %delivery.topic,
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
            event_id: delivery.event_id().unwrap_or_default(),
            topic: &delivery.topic,
            event_type,
            key: &delivery.key,
            envelope: &delivery.text,
            route: failure.route,
            action_index: failure.action_index,
            action_kind: failure.action_kind,
            error: &failure.error,
            attempts,
            first_failed_at: attempt.first_failed_at.unwrap_or(&now),
        },
    )
    .await
    .map_err(store_retry)?;
    handled.dead_lettered.push(failure.error);
    Ok(())
}

/// Runs every matching route for `delivery` (or only the one named `only_route`, for a
/// replay). Returns what it did, or an [`Interrupt`]: a route failed in a way worth retrying
/// and has attempts left, or an unguarded attempt met a failure.
pub async fn handle_delivery(
    connection: &mut Conn<'_>,
    delivery: &Delivery,
    routes: &RouteSet,
    http: &reqwest::Client,
    attempt: Attempt<'_>,
    only_route: Option<&str>,
    mut folds: Option<&mut Folds>,
) -> Result<Handled, Interrupt> {
    let mut handled = Handled::default();
    // A replay of one route's letter keeps naming that route, so replaying it later cannot
    // run the event's other routes, which committed the first time.
    let refuse = |error: String| Failure {
        route: only_route,
        action_index: None,
        action_kind: None,
        error,
    };
    let event = match &delivery.decoded {
        Ok(event) => event,
        Err(undecodable) => {
            handled.event_id = undecodable.event_id.clone();
            let failure = refuse(undecodable.error.clone());
            fail(connection, delivery, failure, attempt, &mut handled).await?;
            return Ok(handled);
        }
    };
    handled.event_id = event.envelope.event_id.clone();
    handled.labels = Some((event.topic.to_string(), event.envelope.event_type.clone()));
    handled.first_attempt = attempt.number == 1;
    if let Err(errors) = routes.schemas.validate(
        event.topic.as_str(),
        &event.envelope.event_type,
        &event.envelope.data,
    ) {
        let failure = refuse(format!("event fails its schema: {}", errors.join("; ")));
        fail(connection, delivery, failure, attempt, &mut handled).await?;
        return Ok(handled);
    }
    // Built for the first matching route; the others start from a clone of it.
    let mut start: Option<Scope> = None;
    for route in routes.matching(event.topic.as_str(), &event.envelope.event_type) {
        if only_route.is_some_and(|name| name != route.name.as_str()) {
            continue;
        }
        handled.routes_run += 1;
        let scope = start
            .get_or_insert_with(|| Scope::new(event, routes.env.clone()))
            .clone();
        run_route(
            connection,
            delivery,
            event,
            route,
            routes,
            RouteRun {
                http,
                attempt,
                scope,
                folds: folds.as_deref_mut(),
            },
            &mut handled,
        )
        .await?;
    }
    // An event no route reads is recorded and consumed, but nothing ran: a typo in a topic or
    // type looks exactly like this, so it is not counted as routed.
    handled.unrouted = handled.routes_run == 0 && only_route.is_none();
    handled.routed = handled.routes_run > 0 && handled.dead_lettered.is_empty();
    Ok(handled)
}

/// A route to run for an event, with what its steps need from the route set.
#[derive(Clone, Copy)]
struct RouteFor<'a> {
    route: &'a Route,
    routes: &'a RouteSet,
    http: &'a reqwest::Client,
    event: &'a Event,
}

/// Runs the route's steps on `connection`, collecting what they emit.
async fn steps_of(
    connection: &mut Conn<'_>,
    route: RouteFor<'_>,
    emitted: &mut Vec<Event>,
    scope: &mut Scope,
    folds: Option<&mut Folds>,
) -> Result<(), crate::action::StepFailure> {
    let mut run = Run {
        connection,
        templates: &route.routes.templates,
        schemas: &route.routes.schemas,
        http: HttpMode::Send(route.http),
        event: route.event,
        route: &route.route.name,
        metrics: &route.route.metrics,
        emitted,
        folds,
        trace: None,
    };
    run_steps(&mut run, &route.route.steps, scope).await
}

/// How one route runs for one event: the HTTP client, which attempt, the scope it starts
/// from, and (in a batch's unguarded pass) where its increments are folded.
struct RouteRun<'a> {
    http: &'a reqwest::Client,
    attempt: Attempt<'a>,
    scope: Scope,
    folds: Option<&'a mut Folds>,
}

async fn run_route(
    connection: &mut Conn<'_>,
    delivery: &Delivery,
    event: &Event,
    route: &Route,
    routes: &RouteSet,
    how: RouteRun<'_>,
    handled: &mut Handled,
) -> Result<(), Interrupt> {
    let RouteRun {
        http,
        attempt,
        mut scope,
        folds,
    } = how;
    let event_id = &event.envelope.event_id;
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
                return fail(connection, delivery, failure, attempt, handled).await;
            }
        }
    }
    let route_for = RouteFor {
        route,
        routes,
        http,
        event,
    };
    let mut route_emitted = Vec::new();
    if !attempt.guarded {
        // No savepoint: on failure the caller discards the whole transaction (see
        // `Attempt::guarded`).
        let ran = steps_of(connection, route_for, &mut route_emitted, &mut scope, folds);
        return match ran.await {
            Ok(()) => {
                handled.applied.push(route.metrics.clone());
                handled.emitted.extend(route_emitted);
                Ok(())
            }
            Err(failure) => Err(Interrupt::Abandon {
                route: route.name.to_string(),
                error: failure.to_string(),
            }),
        };
    }
    let mut savepoint = connection.begin().await.map_err(store_retry)?;
    let result = steps_of(
        &mut savepoint,
        route_for,
        &mut route_emitted,
        &mut scope,
        None,
    )
    .await;
    match result {
        Ok(()) => {
            savepoint.commit().await.map_err(store_retry)?;
            handled.applied.push(route.metrics.clone());
            tracing::debug!(route = %route.name, event_id = %event_id, "route applied");
            handled.emitted.extend(route_emitted);
            Ok(())
        }
        Err(failure) => {
            savepoint.rollback().await.map_err(store_retry)?;
            // The failing action's own policy wins over the route's.
            let policy = failure.retry.unwrap_or(route.retry);
            if attempt.may_retry && failure.error.is_retryable() && attempt.number < policy.attempts
            {
                route.metrics.retried();
                return Err(Interrupt::Retry(Retry {
                    route: route.name.to_string(),
                    error: failure.to_string(),
                    // A server's Retry-After is a floor under the backoff, up to the route's
                    // longest delay: the events behind this one wait too, and the route's
                    // `retry.backoff.max` is how long its author agreed to hold them.
                    delay: policy.delay(attempt.number).max(
                        failure
                            .error
                            .retry_after()
                            .unwrap_or_default()
                            .min(policy.max),
                    ),
                }));
            }
            route.metrics.dead_lettered();
            let dead = Failure {
                route: Some(route.name.as_str()),
                action_index: Some(&failure.path),
                action_kind: Some(failure.kind),
                error: failure.error.to_string(),
            };
            dead_letter(connection, delivery, dead, attempt, handled).await
        }
    }
}

#[cfg(test)]
mod tests {
    //! The retry/dead-letter decision, against a real SQLite file.

    use super::*;
    use crate::event::SubmittedEvent;
    use crate::store::db;
    use crate::store::{log, Store};
    use crate::test_project::load_project;

    const ROUTES: &str = r#"routes:
  - name: record
    on: {topic: test.events}
    actions:
      - insert: {table: items, values: {id: "{{ event.eventId }}", label: "{{ event.eventType }}"}}
  - name: unreachable
    on: {topic: test.events, type: UNREACHABLE}
    retry: {attempts: 3, jitter: false, backoff: {initial: 10ms, max: 15ms, multiplier: 2}}
    actions:
      - insert: {table: items, values: {id: x, label: rolled-back}}
      - http: {url: "http://127.0.0.1:1/", timeout: 1s}
  - name: impatient
    on: {topic: test.events, type: IMPATIENT}
    retry: {attempts: 5}
    actions:
      - http: {url: "http://127.0.0.1:1/", timeout: 1s, retry: {attempts: 1}}
  - name: patient
    on: {topic: test.events, type: PATIENT}
    retry: {attempts: 1}
    actions:
      - http:
          url: "http://127.0.0.1:1/"
          timeout: 1s
          retry: {attempts: 2, jitter: false, backoff: {initial: 20ms, max: 20ms, multiplier: 1}}
  - name: typo
    on: {topic: test.events, type: TYPO}
    actions:
      - insert: {table: items, values: {id: y, label: "{{ data.nmae }}"}}
"#;

    const SCHEMA: &str = r#"{"type": "object", "required": ["name"]}"#;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        routes: RouteSet,
    }

    async fn fixture() -> Fixture {
        let project = load_project(&[
            ("routes/test.yaml", ROUTES),
            ("schemas/test.events/NAMED.json", SCHEMA),
            (
                "migrations/20270101000000_items.sql",
                "CREATE TABLE items (id TEXT NOT NULL, label TEXT NOT NULL);",
            ),
        ])
        .await;
        Fixture {
            _dir: project.dir,
            store: project.store,
            routes: project.routes,
        }
    }

    impl Fixture {
        async fn append(&self, event_type: &str, data: serde_json::Value) -> Delivery {
            let event = serde_json::from_value::<SubmittedEvent>(
                serde_json::json!({"eventType": event_type, "data": data}),
            )
            .unwrap()
            .into_event("test.events")
            .unwrap();
            let mut transaction = self.store.begin().await.unwrap();
            log::append(&mut transaction, &event).await.unwrap();
            transaction.commit().await.unwrap();
            log::read_after(self.store.reader(), 0, 1000)
                .await
                .unwrap()
                .pop()
                .unwrap()
        }

        /// Runs one attempt in its own transaction, committed on success and rolled back on
        /// `Retry`, as the engine does.
        async fn attempt(&self, delivery: &Delivery, attempt: u32) -> Result<Vec<Event>, Retry> {
            let mut transaction = self.store.begin().await.unwrap();
            let http = reqwest::Client::new();
            let attempt = Attempt {
                number: attempt,
                first_failed_at: None,
                may_retry: true,
                guarded: true,
            };
            let outcome = handle_delivery(
                &mut transaction,
                delivery,
                &self.routes,
                &http,
                attempt,
                None,
                None,
            )
            .await
            .map(|handled| handled.emitted)
            .map_err(Interrupt::into_retry);
            match outcome {
                Ok(_) => transaction.commit().await.unwrap(),
                Err(_) => transaction.rollback().await.unwrap(),
            }
            outcome
        }

        async fn labels(&self) -> Vec<String> {
            db::query("SELECT label FROM items ORDER BY label")
                .fetch_all_as::<(String,)>(self.store.reader())
                .await
                .unwrap()
                .into_iter()
                .map(|(label,)| label)
                .collect()
        }

        async fn dead_letters(&self) -> Vec<(Option<String>, Option<String>, String, i64)> {
            db::query("SELECT route, action_index, error, attempts FROM dead_letters")
                .fetch_all_as(self.store.reader())
                .await
                .unwrap()
        }
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_with_backoff_then_dead_lettered() {
        let fixture = fixture().await;
        let record = fixture.append("UNREACHABLE", serde_json::json!({})).await;
        for attempt in 1..=2 {
            let retry = fixture.attempt(&record, attempt).await.unwrap_err();
            assert_eq!(retry.route, "unreachable");
            assert!(
                retry.error.contains("action 1 (http) failed"),
                "{}",
                retry.error
            );
            let expected = if attempt == 1 { 10 } else { 15 };
            assert_eq!(retry.delay, Duration::from_millis(expected));
        }
        // The attempts were rolled back: nothing written yet.
        assert!(fixture.dead_letters().await.is_empty());
        assert!(fixture.labels().await.is_empty());
        let emitted = fixture.attempt(&record, 3).await.unwrap();
        assert!(emitted.is_empty());
        let letters = fixture.dead_letters().await;
        assert_eq!(letters.len(), 1, "{letters:?}");
        let (route, action, error, attempts) = &letters[0];
        assert_eq!(route.as_deref(), Some("unreachable"));
        assert_eq!(action.as_deref(), Some("1"));
        assert!(error.contains("http POST http://127.0.0.1/"), "{error}");
        assert_eq!(*attempts, 3);
        // The failing route's insert was rolled back; the other route's row committed.
        assert_eq!(fixture.labels().await, ["UNREACHABLE"]);
    }

    #[tokio::test]
    async fn an_actions_own_retry_policy_wins_over_the_routes() {
        let fixture = fixture().await;
        // The route allows 5 attempts; the action allows 1.
        let impatient = fixture.append("IMPATIENT", serde_json::json!({})).await;
        fixture.attempt(&impatient, 1).await.unwrap();
        let letters = fixture.dead_letters().await;
        assert_eq!(letters.len(), 1, "{letters:?}");
        assert_eq!(letters[0].0.as_deref(), Some("impatient"));
        assert_eq!(letters[0].3, 1);
        // The route allows 1 attempt; the action allows 2, with its own backoff.
        let patient = fixture.append("PATIENT", serde_json::json!({})).await;
        let retry = fixture.attempt(&patient, 1).await.unwrap_err();
        assert_eq!(retry.route, "patient");
        assert_eq!(retry.delay, Duration::from_millis(20));
        fixture.attempt(&patient, 2).await.unwrap();
        assert_eq!(fixture.dead_letters().await.len(), 2);
    }

    #[tokio::test]
    async fn a_permanent_failure_is_dead_lettered_at_once() {
        let fixture = fixture().await;
        let record = fixture
            .append("TYPO", serde_json::json!({"name": "n"}))
            .await;
        fixture.attempt(&record, 1).await.unwrap();
        let letters = fixture.dead_letters().await;
        assert_eq!(letters.len(), 1, "{letters:?}");
        let (route, action, error, attempts) = &letters[0];
        assert_eq!(
            (route.as_deref(), action.as_deref(), *attempts),
            (Some("typo"), Some("0"), 1)
        );
        assert!(error.contains("undefined"), "{error}");
        assert_eq!(fixture.labels().await, ["TYPO"]);
    }

    #[tokio::test]
    async fn an_event_failing_its_schema_is_dead_lettered_without_running_any_route() {
        let fixture = fixture().await;
        let record = fixture
            .append("NAMED", serde_json::json!({"other": 1}))
            .await;
        fixture.attempt(&record, 1).await.unwrap();
        let letters = fixture.dead_letters().await;
        assert_eq!(letters.len(), 1, "{letters:?}");
        let (route, _, error, _) = &letters[0];
        assert_eq!(route, &None);
        assert!(error.contains("fails its schema"), "{error}");
        assert!(error.contains("name"), "{error}");
        assert!(fixture.labels().await.is_empty(), "no route ran");
    }

    #[tokio::test]
    async fn a_malformed_stored_envelope_is_dead_lettered() {
        let fixture = fixture().await;
        let record = Delivery::new(
            crate::event::Origin::Log(1),
            "test.events".into(),
            "k".into(),
            "{not json".into(),
        );
        fixture.attempt(&record, 1).await.unwrap();
        let letters = fixture.dead_letters().await;
        assert_eq!(letters.len(), 1);
        assert!(
            letters[0].2.contains("malformed event envelope"),
            "{letters:?}"
        );
    }
}
