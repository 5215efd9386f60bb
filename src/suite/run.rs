//! Running one test file: each test in a transaction of its own on the isolated database,
//! rolled back afterwards. Its events go through the routes as the engine runs them (each
//! route in a savepoint, the first failing step stopping its route), and what the routes emit
//! goes through them in turn, until the cascade ends. `http` steps get the test's answers.
//! A route that fails is what the daemon would dead-letter: retries would meet the same
//! answers.

use std::collections::VecDeque;

use serde_json::{json, Value as Json};

use super::expect::{differences, matches, matches_dead_letter, unmatched, Verdict};
use super::file::{MockedResponse, TestCase, TestFile};
use crate::action::{HttpMode, Rendered, Responder, Scope};
use crate::engine::schedule::schedule_event;
use crate::engine::simulate::{check_schema, parse_event, run_route, RouteOutcome};
use crate::event::Event;
use crate::route::diagnostic::Position;
use crate::route::trigger::TriggerKind;
use crate::route::{Ident, RouteSet};
use crate::store::db;
use crate::store::db::Conn;
use crate::store::sql::{insert_sql, row_columns, typed_param, Conflict, StatementBuilder};
use crate::store::{Catalog, Store, StoreError};
use crate::template::{now_rfc3339, TemplateValue};

/// Most events one test's cascade may route before it is called endless.
const MAX_EVENTS: usize = 1_000;

/// One way a test did not hold, at the part of its file that says what was expected.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Where in the test file.
    pub at: Position,
    /// What was expected and what happened, over several lines.
    pub message: String,
}

/// How one test went.
#[derive(Debug)]
pub enum CaseOutcome {
    /// Everything expected held.
    Passed,
    /// These did not.
    Failed(Vec<Failure>),
}

/// What a test's events did.
#[derive(Default)]
struct Happened {
    emitted: Vec<Json>,
    requests: Vec<Json>,
    dead_letters: Vec<Json>,
}

/// Answers `http` steps with a test's `http:` list.
#[derive(Debug)]
struct Answers<'a>(&'a [MockedResponse]);

impl Responder for Answers<'_> {
    fn respond(&self, method: &str, url: &str) -> Result<(u16, Json), String> {
        self.0
            .iter()
            .find(|answer| {
                answer.url == url
                    && answer
                        .method
                        .as_deref()
                        .is_none_or(|expected| expected.eq_ignore_ascii_case(method))
            })
            .map(|answer| (answer.status, answer.body.clone()))
            .ok_or_else(|| {
                format!("the test gives no answer for {method} {url} (add it under http:)")
            })
    }
}

/// Runs every test of `file` on `store`, whose tables `catalog` describes; `env_allow` names
/// the variables a test's `env:` may give. The routes that ran are added to `ran`.
pub async fn run_file(
    store: &Store,
    routes: &RouteSet,
    catalog: &Catalog,
    env_allow: &[String],
    file: &TestFile,
    ran: &mut std::collections::BTreeSet<String>,
) -> Result<Vec<(String, CaseOutcome)>, StoreError> {
    let mut outcomes = Vec::with_capacity(file.tests.len());
    for (index, case) in file.tests.iter().enumerate() {
        let mut transaction = store.begin().await?;
        let failures = run_case(
            &mut transaction,
            routes,
            catalog,
            env_allow,
            (file, index, case),
            ran,
        )
        .await?;
        transaction.rollback().await?;
        let outcome = if failures.is_empty() {
            CaseOutcome::Passed
        } else {
            CaseOutcome::Failed(failures)
        };
        outcomes.push((case.name.clone(), outcome));
    }
    Ok(outcomes)
}

async fn run_case(
    connection: &mut Conn<'_>,
    routes: &RouteSet,
    catalog: &Catalog,
    env_allow: &[String],
    (file, index, case): (&TestFile, usize, &TestCase),
    ran: &mut std::collections::BTreeSet<String>,
) -> Result<Vec<Failure>, StoreError> {
    let here = |path: String| file.position(&format!("tests[{index}]{path}"));
    for (table, rows) in &case.rows {
        for (row_index, row) in rows.iter().enumerate() {
            if let Err(message) = insert_row(connection, catalog, table, row).await {
                return Ok(vec![Failure {
                    at: here(format!(".rows.{table}[{row_index}]")),
                    message,
                }]);
            }
        }
    }
    if let Some(name) = case.env.keys().find(|name| !env_allow.contains(name)) {
        return Ok(vec![Failure {
            at: here(format!(".env.{name}")),
            message: format!("{name} is not in env_allow, so no template may read it"),
        }]);
    }
    // Only what the test gives: the shell's values would make results depend on the machine,
    // and a failure's report would print them.
    let env = TemplateValue::from_serialize(&case.env);
    let answers = Answers(&case.http);
    let mut happened = Happened::default();
    for (event_index, given) in case.events.iter().enumerate() {
        let at = here(format!(".events[{event_index}]"));
        let (first, only_route) = match given_event(routes, given) {
            Ok(given) => given,
            Err(message) => return Ok(vec![Failure { at, message }]),
        };
        let mut pending = VecDeque::from([first]);
        let mut routed = 0;
        while let Some(event) = pending.pop_front() {
            routed += 1;
            if routed > MAX_EVENTS {
                return Ok(vec![Failure {
                    at,
                    message: format!("the cascade did not end after {MAX_EVENTS} events"),
                }]);
            }
            let chosen: Vec<_> = match (&only_route, routed) {
                (Some(name), 1) => routes
                    .routes
                    .iter()
                    .filter(|route| route.name.as_str() == name)
                    .collect(),
                _ => routes
                    .matching(event.topic.as_str(), &event.envelope.event_type)
                    .collect(),
            };
            for route in chosen {
                ran.insert(route.name.to_string());
                let scope = Scope::new(&event, env.clone());
                let ran = run_route(
                    connection,
                    routes,
                    route,
                    &event,
                    scope,
                    HttpMode::Respond(&answers),
                )
                .await
                .map_err(StoreError::Query)?;
                for step in &ran.steps {
                    if let Some(Rendered::Http(request)) = &step.rendered {
                        let headers: serde_json::Map<String, Json> = request
                            .headers
                            .iter()
                            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
                            .collect();
                        happened.requests.push(json!({
                            "method": request.method,
                            "url": request.url,
                            "headers": headers,
                            "body": request.body,
                        }));
                    }
                }
                if let RouteOutcome::Failed { step, error, .. } = &ran.outcome {
                    happened.dead_letters.push(json!({
                        "route": ran.name,
                        "step": step,
                        "error": error,
                        "eventType": event.envelope.event_type,
                    }));
                }
                for emitted in ran.emitted {
                    happened.emitted.push(json!({
                        "topic": emitted.topic.as_str(),
                        "eventType": emitted.envelope.event_type,
                        "key": emitted.key,
                        "eventId": emitted.envelope.event_id,
                        "source": emitted.envelope.source,
                        "data": emitted.envelope.data,
                    }));
                    pending.push_back(emitted);
                }
            }
        }
    }
    check(connection, catalog, &case.expect, &happened, &here).await
}

/// The event a test gives, and the scheduled route it names with `run:`.
fn given_event(routes: &RouteSet, given: &Json) -> Result<(Event, Option<String>), String> {
    if let Some(name) = given.get("run") {
        let name = name
            .as_str()
            .ok_or("run: takes the name of a scheduled route")?;
        let route = routes
            .routes
            .iter()
            .find(|route| route.name.as_str() == name)
            .ok_or_else(|| format!("run: no route is named {name}"))?;
        if !matches!(route.trigger.kind, TriggerKind::Schedule(_)) {
            return Err(format!(
                "run: {name} runs on events, not on a schedule; give it an event instead"
            ));
        }
        return Ok((schedule_event(name, &now_rfc3339()), Some(name.to_owned())));
    }
    let event = parse_event(&given.to_string(), None)
        .map_err(|refused| format!("the event is refused: {refused}"))?;
    check_schema(routes, &event).map_err(|refused| format!("the event is refused: {refused}"))?;
    Ok((event, None))
}

/// Inserts a row a test starts from, each value converted for its column as routes' are.
async fn insert_row(
    connection: &mut Conn<'_>,
    catalog: &Catalog,
    table: &str,
    row: &serde_json::Map<String, Json>,
) -> Result<(), String> {
    let table_ident =
        Ident::parse(table).map_err(|error| format!("invalid table name {table}: {error}"))?;
    let columns = catalog
        .columns(table)
        .ok_or_else(|| format!("there is no table {table}"))?;
    let mut idents = Vec::with_capacity(row.len());
    let mut params = Vec::with_capacity(row.len());
    for (name, value) in row {
        let column = columns
            .iter()
            .find(|column| column.name == *name)
            .ok_or_else(|| format!("table {table} has no column {name}"))?;
        let ident =
            Ident::parse(name).map_err(|error| format!("invalid column name {name}: {error}"))?;
        params.push(
            typed_param(&ident, &column.column_type, value.clone())
                .map_err(|refused| refused.to_string())?,
        );
        idents.push(ident);
    }
    let names: Vec<&Ident> = idents.iter().collect();
    db::query_owned(insert_sql(&table_ident, &names, &Conflict::Fail, None))
        .bind_all(params)
        .execute(&mut *connection)
        .await
        .map_err(|error| format!("cannot insert the row into {table}: {error}"))?;
    Ok(())
}

/// The rows of `table`, as routes read them.
async fn table_rows(
    connection: &mut Conn<'_>,
    catalog: &Catalog,
    table: &str,
) -> Result<Vec<Json>, String> {
    let table_ident =
        Ident::parse(table).map_err(|error| format!("invalid table name {table}: {error}"))?;
    let columns = catalog
        .columns(table)
        .ok_or_else(|| format!("there is no table {table}"))?;
    let rows = StatementBuilder::new(format!(
        "SELECT {} FROM {}",
        row_columns(columns),
        table_ident.quoted()
    ))
    .finish()
    .into_query()
    .fetch_all(&mut *connection)
    .await
    .map_err(|error| format!("cannot read {table}: {error}"))?;
    rows.iter()
        .map(|row| {
            row.to_json(Some(columns))
                .map(Json::Object)
                .map_err(|error| error.to_string())
        })
        .collect()
}

async fn check(
    connection: &mut Conn<'_>,
    catalog: &Catalog,
    expect: &super::file::Expectations,
    happened: &Happened,
    here: &impl Fn(String) -> Position,
) -> Result<Vec<Failure>, StoreError> {
    let mut failures = Vec::new();
    for (table, expected) in &expect.rows {
        let path = format!(".expect.rows.{table}");
        match table_rows(connection, catalog, table).await {
            Ok(actual) => failures.extend(compare(
                &format!("rows of {table}"),
                expected,
                &actual,
                matches,
                &path,
                here,
            )),
            Err(message) => failures.push(Failure {
                at: here(path),
                message,
            }),
        }
    }
    // Header names are case-insensitive; requests keep them in lower case.
    let requests = expect.requests.as_ref().map(|requests| {
        requests
            .iter()
            .map(|request| {
                let mut request = request.clone();
                if let Some(Json::Object(headers)) = request.get_mut("headers") {
                    *headers = std::mem::take(headers)
                        .into_iter()
                        .map(|(name, value)| (name.to_ascii_lowercase(), value))
                        .collect();
                }
                request
            })
            .collect::<Vec<_>>()
    });
    let sections = [
        (
            "emitted",
            "emitted events",
            &expect.emitted,
            &happened.emitted,
        ),
        ("requests", "http requests", &requests, &happened.requests),
    ];
    for (key, what, expected, actual) in sections {
        if let Some(expected) = expected {
            let path = format!(".expect.{key}");
            failures.extend(compare(what, expected, actual, matches, &path, here));
        }
    }
    if let Some(expected) = &expect.dead_letters {
        failures.extend(compare(
            "dead letters",
            expected,
            &happened.dead_letters,
            matches_dead_letter,
            ".expect.dead_letters",
            here,
        ));
    }
    Ok(failures)
}

/// The failure, if any, of one expected section against what happened.
fn compare(
    what: &str,
    expected: &[Json],
    actual: &[Json],
    matches_one: impl Fn(&Json, &Json) -> bool,
    path: &str,
    here: &impl Fn(String) -> Position,
) -> Option<Failure> {
    let listed = |items: &[Json]| -> String {
        if items.is_empty() {
            return "      (none)\n".to_owned();
        }
        items.iter().map(|item| format!("      {item}\n")).collect()
    };
    match unmatched(expected, actual, matches_one) {
        Verdict::Matched => None,
        Verdict::Unmatched(index) => {
            // The actual item closest to the expectation, and how it differs.
            let closest = actual
                .iter()
                .map(|item| differences(&expected[index], item))
                .min_by_key(Vec::len)
                .map(|differing| {
                    differing
                        .iter()
                        .map(|difference| format!("      {difference}\n"))
                        .collect::<String>()
                })
                .unwrap_or_default();
            Some(Failure {
                at: here(format!("{path}[{index}]")),
                message: format!(
                    "none of the {what} matches\n    expected:\n      {}\n    the closest differs in:\n{closest}    actual:\n{}",
                    expected[index],
                    listed(actual)
                ),
            })
        }
        Verdict::CountDiffers => Some(Failure {
            at: here(path.to_owned()),
            message: format!(
                "expected {} {what}, found {}\n    expected:\n{}    actual:\n{}",
                expected.len(),
                actual.len(),
                listed(expected),
                listed(actual)
            ),
        }),
    }
}
