//! A run of consecutive events of one topic and type, handled step by step: each step of a
//! route for all the events, in one statement where the step is an insert
//! ([`crate::action::bulk`]), then the route's next step. Only in a batch's unguarded pass and
//! only for routes marked [`Route::lockstep`], which is where the outcome is the one the events
//! would leave one by one (the bulk module says why). Any failure abandons the pass, as a
//! failure of any event of the unguarded pass does.

use crate::action::fold::Folds;
use crate::action::{bulk, run_step, Action, HttpMode, Run, Scope};
use crate::event::Event;
use crate::route::{Route, RouteSet};
use crate::store::db::Conn;

use super::Handled;

/// Fewest events worth a run: a single event goes the usual way.
pub const MIN_RUN: usize = 2;

/// Whether events matching `routes` may run in lockstep: every route is marked so and no two
/// of their bulk inserts write one table (one could then see the other's rows of later
/// events).
pub fn allows(routes: &[&Route]) -> bool {
    if routes.is_empty() || !routes.iter().all(|route| route.lockstep) {
        return false;
    }
    let mut tables: Vec<&str> = routes
        .iter()
        .flat_map(|route| &route.steps)
        .filter_map(|step| match &step.action {
            Action::Insert(insert) => Some(insert.table.as_str()),
            _ => None,
        })
        .collect();
    let inserts = tables.len();
    tables.sort_unstable();
    tables.dedup();
    tables.len() == inserts
}

/// Why a run was abandoned: the pass runs again guarded, event by event.
#[derive(Debug)]
pub struct Abandoned(pub String);

/// Runs `routes` (those matching the events' topic and type, in order) for every event.
/// Returns what each event's routes did, in the events' order, as one event's [`Handled`]
/// of an unguarded pass.
pub async fn run(
    connection: &mut Conn<'_>,
    events: &[&Event],
    routes: &[&Route],
    route_set: &RouteSet,
    http: &reqwest::Client,
    folds: &mut Folds,
) -> Result<Vec<Handled>, Abandoned> {
    let mut handled = Vec::with_capacity(events.len());
    for event in events {
        let envelope = &event.envelope;
        if let Err(errors) =
            route_set
                .schemas
                .validate(event.topic.as_str(), &envelope.event_type, &envelope.data)
        {
            return Err(Abandoned(format!(
                "event fails its schema: {}",
                errors.join("; ")
            )));
        }
        handled.push(Handled {
            event_id: envelope.event_id.clone(),
            labels: Some((event.topic.to_string(), envelope.event_type.clone())),
            first_attempt: true,
            ..Handled::default()
        });
    }
    let starts: Vec<Scope> = events
        .iter()
        .map(|event| Scope::new(event, route_set.env.clone()))
        .collect();
    let abandon = |failure: crate::action::StepFailure| Abandoned(failure.to_string());
    for route in routes {
        let mut scopes = Vec::with_capacity(starts.len());
        for (start, handled) in starts.iter().zip(handled.iter_mut()) {
            handled.routes_run += 1;
            let runs = match &route.trigger.when {
                None => true,
                Some(condition) => route_set
                    .templates
                    .test(condition, &start.context())
                    .map_err(|error| Abandoned(format!("on.when: {error}")))?,
            };
            scopes.push(runs.then(|| start.clone()));
        }
        let mut emitted: Vec<Vec<Event>> = vec![Vec::new(); events.len()];
        for step in &route.steps {
            if let Action::Insert(_) = &step.action {
                bulk::insert_for_all(
                    connection,
                    &route_set.templates,
                    &route.metrics,
                    step,
                    &mut scopes,
                )
                .await
                .map_err(abandon)?;
                continue;
            }
            for ((scope, event), emitted) in scopes.iter_mut().zip(events).zip(&mut emitted) {
                let Some(scope) = scope else { continue };
                let mut run = Run {
                    connection: &mut *connection,
                    templates: &route_set.templates,
                    schemas: &route_set.schemas,
                    http: HttpMode::Send(http),
                    event,
                    route: &route.name,
                    metrics: &route.metrics,
                    emitted,
                    folds: Some(&mut *folds),
                    trace: None,
                };
                run_step(&mut run, step, scope).await.map_err(abandon)?;
            }
        }
        for ((scope, handled), emitted) in scopes.iter().zip(&mut handled).zip(emitted) {
            if scope.is_some() {
                handled.applied.push(route.metrics.clone());
                handled.emitted.extend(emitted);
            }
        }
    }
    for handled in &mut handled {
        handled.routed = true;
    }
    Ok(handled)
}
