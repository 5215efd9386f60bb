//! The scheduler: runs the routes whose trigger is `on: {schedule: ...}`.
//!
//! Each pass reads the live route set (so a reload adds, changes and removes schedules) and the
//! last tick of every route from `schedule_runs`, and runs the routes that are due. A run is one
//! transaction: it first claims its tick with a compare-and-set on `schedule_runs`, then runs
//! the route's actions in a savepoint, with a synthetic `SCHEDULE` event as `event`. Emitted
//! events join the event log in that transaction, as they do for event routes, and the consumer
//! is woken after the commit. A failure rolls the savepoint back and writes a dead letter in its
//! place; the claim still commits, so a broken route fails once per tick instead of in a loop,
//! and the next tick is its retry. Nothing here ends the loop: a database failure is logged and
//! the pass is tried again a second later.

use std::collections::HashMap;
use std::time::Duration;

use crate::store::db::Conn;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use super::{log_committed, LogSignal, RouteSetHandle};
use crate::action::{run_steps, HttpMode, Run, Scope, StepFailure, EMIT_SOURCE};
use crate::event::{Envelope, Event, TopicName};
use crate::route::trigger::Schedule;
use crate::route::{Route, RouteSet};
use crate::store::dead_letters::{self, NewDeadLetter};
use crate::store::{schedule_runs, Store, StoreError};
use crate::template::now_rfc3339;

/// `event.topic` of the synthetic event a scheduled route sees (and of its dead letters).
pub const SCHEDULE_TOPIC: &str = "schedule";

/// `event.eventType` of the synthetic event a scheduled route sees.
pub const SCHEDULE_EVENT_TYPE: &str = "SCHEDULE";

/// Longest sleep between two passes: bounds how late a reload's new schedule or another
/// daemon's run is noticed, and is the granularity of the shortest interval.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Runs scheduled routes, on their schedule ([`Scheduler::run`]) or on request
/// ([`Scheduler::trigger`]). Cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    store: Store,
    routes: RouteSetHandle,
    signal: LogSignal,
    http: reqwest::Client,
}

/// Why a scheduled route could not be run on request.
#[derive(Debug, Error)]
pub enum TriggerError {
    /// No route has this name.
    #[error("no route named {0:?}")]
    NoSuchRoute(String),
    /// The route runs on events.
    #[error("route {0:?} runs on events, not on a schedule; post an event to run it")]
    NotScheduled(String),
    /// The database failed; nothing was committed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// The route.
    pub route: String,
    /// The tick it ran for (RFC 3339): a cron time, or when an interval run or a manual
    /// trigger started. `data.scheduledAt` of the `SCHEDULE` event.
    pub scheduled_at: String,
    /// When it ran (RFC 3339).
    pub ran_at: String,
    /// The outcome.
    pub outcome: RunOutcome,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The actions committed, with this many emitted events.
    Completed {
        /// Events appended to the log.
        emitted: usize,
    },
    /// `on.when` was falsy; no action ran, and the tick counts as run.
    Skipped,
    /// An action (or `on.when`) failed; its effects were rolled back and a dead letter written.
    Failed {
        /// What failed, with the action's path and kind.
        error: String,
    },
    /// Another daemon on the database, or a manual trigger, moved the last tick since it was
    /// read; nothing ran here.
    ClaimedElsewhere,
}

/// How a run claims its tick.
enum Claim<'a> {
    /// A tick of the schedule: only if the last tick is still `expected` (`None`: never ran).
    Tick { expected: Option<&'a str> },
    /// On request: whatever the last tick was.
    Now,
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_tick(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

/// The event a scheduled route sees: `SCHEDULE` on topic `schedule`, keyed by the route, with
/// `data: {route, scheduledAt}`.
pub fn schedule_event(route: &str, scheduled_at: &str) -> Event {
    // Derived from route and tick, so a run redone after a rollback (the database failed before
    // the commit) sends its `http` actions' Idempotency-Keys again unchanged.
    let event_id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("crm-router:schedule/{route}/{scheduled_at}").as_bytes(),
    );
    Event {
        topic: TopicName::parse(SCHEDULE_TOPIC).expect("a valid topic name"),
        key: route.to_owned(),
        envelope: Envelope {
            event_id: event_id.to_string(),
            event_type: SCHEDULE_EVENT_TYPE.to_owned(),
            timestamp: scheduled_at.to_owned(),
            source: EMIT_SOURCE.to_owned(),
            data: json!({"route": route, "scheduledAt": scheduled_at}),
        },
    }
}

impl Scheduler {
    /// A scheduler over the live route set; `signal` wakes the consumer after a run emitted.
    pub fn new(store: Store, routes: RouteSetHandle, signal: LogSignal) -> Self {
        Self {
            store,
            routes,
            signal,
            http: crate::action::http_client(),
        }
    }

    /// Runs due routes until `shutdown` is cancelled; a run in flight finishes first.
    pub async fn run(self, shutdown: CancellationToken) {
        // When this process first saw each scheduled route: a cron route that never ran is first
        // due at the cron time after that, not at once.
        let mut first_seen: HashMap<String, DateTime<Utc>> = HashMap::new();
        while !shutdown.is_cancelled() {
            let next = self.run_due(&mut first_seen).await;
            let sleep = next
                .and_then(|next| (next - Utc::now()).to_std().ok())
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        tracing::info!("scheduler stopped");
    }

    /// One pass: runs every route that is due. Returns when the next one is due, if known.
    async fn run_due(
        &self,
        first_seen: &mut HashMap<String, DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        let routes = self.routes.load_full();
        let scheduled: Vec<(&Route, &Schedule)> = routes
            .routes
            .iter()
            .filter_map(|route| Some((route, route.trigger.schedule()?)))
            .collect();
        first_seen.retain(|name, _| {
            scheduled
                .iter()
                .any(|(route, _)| route.name.as_str() == name)
        });
        if scheduled.is_empty() {
            return None;
        }
        let last_ticks = match schedule_runs::last_ticks(self.store.reader()).await {
            Ok(last_ticks) => last_ticks,
            Err(error) => {
                tracing::error!(%error, "scheduler cannot read the last runs; retrying");
                return None;
            }
        };
        let mut next_due: Option<DateTime<Utc>> = None;
        for (route, schedule) in scheduled {
            let seen = *first_seen
                .entry(route.name.to_string())
                .or_insert_with(Utc::now);
            let last_tick = last_ticks.get(route.name.as_str()).map(String::as_str);
            // An unreadable stored tick counts as "never ran"; the claim still compares against
            // the stored text, and replaces it.
            let due = schedule.next_due(last_tick.and_then(parse_tick), seen);
            let now = Utc::now();
            if due > now {
                next_due = Some(next_due.map_or(due, |next| next.min(due)));
                continue;
            }
            let claim = Claim::Tick {
                expected: last_tick,
            };
            if let Err(error) = self
                .run_route(&routes, route, schedule.tick_at(now), claim)
                .await
            {
                tracing::error!(route = %route.name, %error, "scheduled run not committed; trying again on the next pass");
            }
        }
        next_due
    }

    /// Runs the scheduled route `name` now, as a tick would (it counts as the route's last run).
    pub async fn trigger(&self, name: &str) -> Result<RunReport, TriggerError> {
        let routes = self.routes.load_full();
        let route = routes
            .get(name)
            .ok_or_else(|| TriggerError::NoSuchRoute(name.to_owned()))?;
        if route.trigger.schedule().is_none() {
            return Err(TriggerError::NotScheduled(name.to_owned()));
        }
        Ok(self
            .run_route(&routes, route, Utc::now(), Claim::Now)
            .await?)
    }

    /// Claims `tick` and runs the route, all in one transaction.
    async fn run_route(
        &self,
        routes: &RouteSet,
        route: &Route,
        tick: DateTime<Utc>,
        claim: Claim<'_>,
    ) -> Result<RunReport, StoreError> {
        let scheduled_at = rfc3339(tick);
        let ran_at = now_rfc3339();
        let report = |outcome| RunReport {
            route: route.name.to_string(),
            scheduled_at: scheduled_at.clone(),
            ran_at: ran_at.clone(),
            outcome,
        };
        let name = route.name.as_str();
        let mut transaction = self.store.begin().await?;
        let claimed = match claim {
            Claim::Tick { expected } => {
                schedule_runs::claim(&mut transaction, name, expected, &scheduled_at, &ran_at)
                    .await?
            }
            Claim::Now => {
                schedule_runs::record(&mut transaction, name, &scheduled_at, &ran_at).await?;
                true
            }
        };
        if !claimed {
            transaction.rollback().await?;
            tracing::debug!(route = name, %scheduled_at, "tick already claimed by another daemon or a manual trigger");
            return Ok(report(RunOutcome::ClaimedElsewhere));
        }
        let event = schedule_event(name, &scheduled_at);
        let mut scope = Scope::new(&event, routes.env.clone());
        if let Some(condition) = &route.trigger.when {
            match routes.templates.test(condition, &scope.context()) {
                Ok(true) => {}
                Ok(false) => {
                    transaction.commit().await?;
                    tracing::debug!(route = name, %scheduled_at, "scheduled run skipped: on.when is false");
                    return Ok(report(RunOutcome::Skipped));
                }
                Err(error) => {
                    let error = format!("on.when: {error}");
                    dead_letter(&mut transaction, &event, route, None, &error).await?;
                    transaction.commit().await?;
                    return Ok(report(RunOutcome::Failed { error }));
                }
            }
        }
        let mut savepoint = transaction.begin().await?;
        let mut emitted = Vec::new();
        let result = {
            let mut run = Run {
                connection: &mut savepoint,
                templates: &routes.templates,
                schemas: &routes.schemas,
                http: HttpMode::Send(&self.http),
                event: &event,
                route: &route.name,
                metrics: &route.metrics,
                emitted: &mut emitted,
                folds: None,
                trace: None,
            };
            run_steps(&mut run, &route.steps, &mut scope).await
        };
        match result {
            Ok(()) => {
                crate::store::log::append_all(&mut savepoint, &emitted).await?;
                savepoint.commit().await?;
                transaction.commit().await?;
                // A one-minute schedule that finds nothing would otherwise fill the log.
                if emitted.is_empty() {
                    tracing::debug!(route = name, %scheduled_at, "⏰ Scheduled route ran: {name}");
                } else {
                    tracing::info!(
                        route = name,
                        %scheduled_at,
                        emitted = emitted.len(),
                        "⏰ Scheduled route ran: {name}"
                    );
                    self.signal.notify_one();
                    log_committed(&emitted);
                }
                Ok(report(RunOutcome::Completed {
                    emitted: emitted.len(),
                }))
            }
            Err(failure) => {
                savepoint.rollback().await?;
                dead_letter(
                    &mut transaction,
                    &event,
                    route,
                    Some(&failure),
                    &failure.error.to_string(),
                )
                .await?;
                transaction.commit().await?;
                Ok(report(RunOutcome::Failed {
                    error: failure.to_string(),
                }))
            }
        }
    }
}

/// Records a failed run in `dead_letters`, in the run's transaction (which also holds its claim).
async fn dead_letter(
    connection: &mut Conn<'_>,
    event: &Event,
    route: &Route,
    failure: Option<&StepFailure>,
    error: &str,
) -> Result<(), StoreError> {
    tracing::warn!(
        route = %route.name,
        action = failure.map_or("-", |failure| failure.path.as_str()),
        scheduled_at = %event.envelope.timestamp,
        %error,
        "scheduled run failed; dead-lettered"
    );
    let envelope = serde_json::to_string(&event.envelope).expect("envelopes serialise");
    let now = now_rfc3339();
    dead_letters::insert(
        connection,
        &NewDeadLetter {
            event_id: &event.envelope.event_id,
            topic: event.topic.as_str(),
            event_type: &event.envelope.event_type,
            key: &event.key,
            envelope: &envelope,
            route: Some(route.name.as_str()),
            action_index: failure.map(|failure| failure.path.as_str()),
            action_kind: failure.map(|failure| failure.kind),
            error,
            attempts: 1,
            first_failed_at: &now,
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Claims and outcomes of single runs, against a real SQLite file.

    use std::sync::Arc;

    use arc_swap::ArcSwap;
    use tokio::sync::Notify;

    use super::*;
    use crate::test_project::load_project;

    const ROUTES: &str = r#"routes:
  - name: stamp
    on: {schedule: 1m}
    actions:
      - insert: {table: stamps, values: {at: "{{ data.scheduledAt }}", event: "{{ event.eventType }} {{ event.topic }} {{ event.key }}"}}
      - emit: {topic: test.events, eventType: STAMPED, key: "{{ data.route }}"}
  - name: off
    on: {schedule: 1m, when: "false"}
    actions:
      - insert: {table: stamps, values: {at: "{{ data.scheduledAt }}", event: off}}
"#;

    async fn scheduler() -> (tempfile::TempDir, Scheduler) {
        let project = load_project(&[
            ("routes/stamp.yaml", ROUTES),
            (
                "migrations/20270101000000_stamps.sql",
                "CREATE TABLE stamps (at TEXT NOT NULL, event TEXT NOT NULL);",
            ),
        ])
        .await;
        let scheduler = Scheduler::new(
            project.store,
            Arc::new(ArcSwap::from_pointee(project.routes)),
            Arc::new(Notify::new()),
        );
        (project.dir, scheduler)
    }

    async fn tick(
        scheduler: &Scheduler,
        name: &str,
        expected: Option<&str>,
        at: &str,
    ) -> RunOutcome {
        let routes = scheduler.routes.load_full();
        let route = routes.get(name).unwrap();
        let at = parse_tick(at).unwrap();
        scheduler
            .run_route(&routes, route, at, Claim::Tick { expected })
            .await
            .unwrap()
            .outcome
    }

    async fn stamps(scheduler: &Scheduler) -> Vec<(String, String)> {
        crate::store::db::query("SELECT at, event FROM stamps ORDER BY at")
            .fetch_all_as(scheduler.store.reader())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_tick_is_claimed_once_with_a_compare_and_set_on_the_last_one() {
        let (_dir, scheduler) = scheduler().await;
        let first = "2026-12-01T10:00:00.000Z";
        let second = "2026-12-01T10:01:00.000Z";
        assert_eq!(
            tick(&scheduler, "stamp", None, first).await,
            RunOutcome::Completed { emitted: 1 }
        );
        // Another daemon that also saw "never ran", or the old last tick, loses.
        assert_eq!(
            tick(&scheduler, "stamp", None, second).await,
            RunOutcome::ClaimedElsewhere
        );
        assert_eq!(
            tick(
                &scheduler,
                "stamp",
                Some("2026-12-01T09:59:00.000Z"),
                second
            )
            .await,
            RunOutcome::ClaimedElsewhere
        );
        assert_eq!(
            tick(&scheduler, "stamp", Some(first), second).await,
            RunOutcome::Completed { emitted: 1 }
        );
        assert_eq!(
            stamps(&scheduler).await,
            [
                (first.to_owned(), "SCHEDULE schedule stamp".to_owned()),
                (second.to_owned(), "SCHEDULE schedule stamp".to_owned())
            ]
        );
        let last = schedule_runs::last_ticks(scheduler.store.reader())
            .await
            .unwrap();
        assert_eq!(last.get("stamp").map(String::as_str), Some(second));
        // The emitted events are in the log, committed with the rows.
        let head = crate::store::log::head(scheduler.store.reader())
            .await
            .unwrap();
        assert_eq!(head, 2);
    }

    #[tokio::test]
    async fn a_falsy_when_skips_the_run_but_counts_it_and_a_trigger_runs_whatever_the_last_tick() {
        let (_dir, scheduler) = scheduler().await;
        assert_eq!(
            tick(&scheduler, "off", None, "2026-12-01T10:00:00.000Z").await,
            RunOutcome::Skipped
        );
        assert!(stamps(&scheduler).await.is_empty());
        let report = scheduler.trigger("stamp").await.unwrap();
        assert_eq!(report.outcome, RunOutcome::Completed { emitted: 1 });
        let report = scheduler.trigger("stamp").await.unwrap();
        assert_eq!(report.outcome, RunOutcome::Completed { emitted: 1 });
        let last = schedule_runs::last_ticks(scheduler.store.reader())
            .await
            .unwrap();
        assert_eq!(last.len(), 2);
        assert_eq!(last["stamp"], report.scheduled_at);
        assert!(matches!(
            scheduler.trigger("nope").await,
            Err(TriggerError::NoSuchRoute(_))
        ));
    }

    #[test]
    fn the_schedule_event_is_stable_per_route_and_tick() {
        let event = schedule_event("stamp", "2026-12-01T10:00:00.000Z");
        assert_eq!(event.topic.as_str(), "schedule");
        assert_eq!(event.key, "stamp");
        assert_eq!(event.envelope.event_type, "SCHEDULE");
        assert_eq!(
            event.envelope.data,
            json!({"route": "stamp", "scheduledAt": "2026-12-01T10:00:00.000Z"})
        );
        let again = schedule_event("stamp", "2026-12-01T10:00:00.000Z");
        assert_eq!(event.envelope.event_id, again.envelope.event_id);
        let next = schedule_event("stamp", "2026-12-01T10:01:00.000Z");
        assert_ne!(event.envelope.event_id, next.envelope.event_id);
    }
}
