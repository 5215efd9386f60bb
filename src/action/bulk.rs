//! One `insert:` step for many events in one statement, and which routes may run that way.
//!
//! The engine runs a run of consecutive events of one topic and type *in lockstep*
//! (`engine::lockstep`): each step of a route for all the events, then the route's next step.
//! That leaves what running the events one by one leaves when no step can see what another
//! event's steps did in between, which is what a route needs to be marked [`Route::lockstep`]:
//!
//! - Every step is an insert that goes in bulk, an `emit` (which touches no table) or a
//!   foldable upsert (summed per key whatever the order, see [`super::fold`]). No `query`,
//!   `update` or `for_each` (they read rows other events' steps write) and no `http`.
//! - An insert goes in bulk when its conflict is `fail` or `ignore`, its table takes bulk
//!   inserts ([`Catalog::takes_bulk_inserts`]: no trigger or rule could see the rows in
//!   between, and no foreign key could be satisfied only by a row a later event inserts), and,
//!   when it keeps its row (`as:`), its values cover a unique key of text, integer or UUID
//!   columns that keep exactly the value bound (not `char(n)`, `varchar(n)` or `name`). Neither database promises the order of `RETURNING`, so the rows that come back
//!   are matched to their events by that key; with `ignore`, the first event with a key gets
//!   the row and the others `null`, as one by one (the others met its row). `update` is left
//!   out: PostgreSQL refuses a statement that would update one row twice.
//! - The engine checks the rest when it forms a run: the bulk inserts of the run's routes write
//!   different tables.
//!
//! A statement that fails (a unique key twice in the batch, a refused value) fails for every
//! event in it: the engine abandons the pass, and the guarded pass runs the events one by one,
//! which finds the event that fails. So does a row that cannot be matched to its event.

use std::collections::{HashMap, VecDeque};

use super::{Action, ActionError, Insert, Scope, Step, StepFailure};
use crate::route::Route;
use crate::store::catalog::{Catalog, Column};
use crate::store::column_type::ColumnType;
use crate::store::db::{self, Conn, Param};
use crate::store::sql::Conflict;
use crate::template::TemplateEnvironment;

/// Parameters per statement: under SQLite's 32,766 and PostgreSQL's 65,535.
const MAX_PARAMETERS: usize = 30_000;

/// Which values of an insert identify its row, to give each event the row it inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKey {
    /// Positions in the insert's values, with what their column holds. Empty when the step
    /// keeps no row.
    parts: Vec<(usize, KeyKind)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Integer,
    Text,
    Uuid,
}

impl KeyKind {
    /// What a key column holds, when the database keeps exactly the value bound: not for
    /// `char(n)` (padded), `varchar(n)` (trailing spaces beyond `n` dropped) or `name`
    /// (truncated), whose stored value could match another event's.
    fn of(column: &Column) -> Option<Self> {
        let declared = column.sql_type.as_str();
        match &column.column_type {
            ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt => Some(Self::Integer),
            ColumnType::Text
                if [
                    "bpchar",
                    "char",
                    "character",
                    "varchar",
                    "name",
                    "nchar",
                    "nvarchar",
                ]
                .iter()
                .any(|kind| declared.starts_with(kind)) =>
            {
                None
            }
            ColumnType::Text => Some(Self::Text),
            ColumnType::Uuid => Some(Self::Uuid),
            _ => None,
        }
    }

    /// The key part of a value about to be inserted; `None` for NULL or another kind.
    fn of_param(self, param: &Param<'_>) -> Option<String> {
        match (self, param) {
            (Self::Integer, Param::Int(value)) => Some(format!("i{value}")),
            (Self::Text, Param::Text(text)) => Some(format!("t{text}")),
            (Self::Uuid, Param::Uuid(uuid)) => Some(format!("u{uuid}")),
            // SQLite keeps UUIDs as text.
            (Self::Uuid, Param::Text(text)) => uuid::Uuid::parse_str(text)
                .ok()
                .map(|uuid| format!("u{uuid}")),
            _ => None,
        }
    }

    /// The key part of a value read back.
    fn of_json(self, value: &serde_json::Value) -> Option<String> {
        match (self, value) {
            (Self::Integer, serde_json::Value::Number(number)) => {
                number.as_i64().map(|value| format!("i{value}"))
            }
            (Self::Text, serde_json::Value::String(text)) => Some(format!("t{text}")),
            (Self::Uuid, serde_json::Value::String(text)) => uuid::Uuid::parse_str(text)
                .ok()
                .map(|uuid| format!("u{uuid}")),
            _ => None,
        }
    }
}

/// Marks the inserts that go in bulk and the routes that may run in lockstep (see the
/// module's comment); nothing without a catalog.
pub fn mark_lockstep(routes: &mut [Route], catalog: Option<&Catalog>) {
    for route in routes.iter_mut() {
        let mut lockstep = catalog.is_some();
        for step in route.steps.iter_mut() {
            match &mut step.action {
                Action::Insert(insert) => {
                    let key = catalog.and_then(|catalog| row_key(insert, catalog));
                    lockstep &= key.is_some();
                    insert.set_bulk(key);
                }
                Action::Emit(_) => {}
                Action::Upsert(upsert) if upsert.foldable() => {}
                _ => lockstep = false,
            }
        }
        route.lockstep = lockstep;
    }
}

fn row_key(insert: &Insert, catalog: &Catalog) -> Option<RowKey> {
    let table = insert.table.as_str();
    if !catalog.takes_bulk_inserts(table) {
        return None;
    }
    let columns: Vec<&str> = insert
        .values()
        .iter()
        .map(|value| value.column.as_str())
        .collect();
    let key_columns: Vec<String> = match insert.conflict() {
        Conflict::Update(_) => return None,
        _ if insert.as_name().is_none() => return Some(RowKey { parts: Vec::new() }),
        Conflict::Ignore(keys) => keys.iter().map(|key| key.as_str().to_owned()).collect(),
        Conflict::Fail => catalog.covers_unique_key(table, &columns)?,
    };
    let parts = key_columns
        .iter()
        .map(|column| {
            let at = columns.iter().position(|name| name == column)?;
            let column = insert
                .table_columns()
                .iter()
                .find(|known| known.name == *column)?;
            Some((at, KeyKind::of(column)?))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(RowKey { parts })
}

/// One event's row of a bulk insert.
struct BulkRow {
    /// The event's place in the run.
    event: usize,
    /// Its key parts (see [`RowKey`]); empty when the step keeps no row.
    key: Vec<String>,
    /// Its values, moved into the statement.
    params: Vec<Param<'static>>,
}

/// Runs an insert step that goes in bulk for every event whose scope is given (`None`: the
/// route does not run for that event), in as few statements as the parameter limits allow,
/// and keeps each event's row under `as:`. Each event's share of the statements' time is
/// recorded as its action's duration, so the histogram counts one insert per event as one by
/// one.
pub async fn insert_for_all(
    connection: &mut Conn<'_>,
    templates: &TemplateEnvironment,
    metrics: &crate::telemetry::RouteMetrics,
    step: &Step,
    scopes: &mut [Option<Scope>],
) -> Result<(), StepFailure> {
    let Action::Insert(insert) = &step.action else {
        unreachable!("insert_for_all runs inserts");
    };
    let key = insert.bulk().expect("a step that goes in bulk");
    let fail = |error: ActionError| StepFailure {
        path: step.path.clone(),
        kind: "insert",
        error,
        retry: step.retry,
    };
    let started = std::time::Instant::now();
    let mut rows: Vec<BulkRow> = Vec::with_capacity(scopes.len());
    for (event, scope) in scopes.iter().enumerate() {
        let Some(scope) = scope else { continue };
        if let Some(condition) = &step.when {
            if !templates
                .test(condition, &scope.context())
                .map_err(|error| fail(error.into()))?
            {
                continue;
            }
        }
        let params = insert.render(templates, scope).map_err(fail)?;
        let key = key
            .parts
            .iter()
            .map(|(at, kind)| kind.of_param(&params[*at]))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| fail(unmatched(insert)))?;
        rows.push(BulkRow { event, key, params });
    }
    let per_statement = (MAX_PARAMETERS / insert.width().max(1)).max(1);
    for chunk in rows.chunks_mut(per_statement) {
        let sql = insert.rows_sql(chunk.len());
        let statement = db::query(&sql).bind_all(
            chunk
                .iter_mut()
                .flat_map(|row| std::mem::take(&mut row.params)),
        );
        let Some(name) = insert.as_name() else {
            statement
                .execute(&mut *connection)
                .await
                .map_err(|e| fail(e.into()))?;
            continue;
        };
        let returned = statement
            .fetch_all(&mut *connection)
            .await
            .map_err(|e| fail(e.into()))?;
        let kept = match_rows(key, insert, chunk, &returned).map_err(fail)?;
        for (row, kept) in chunk.iter().zip(kept) {
            let scope = scopes[row.event].as_mut().expect("a scope for each row");
            scope.set_step(name, &kept.unwrap_or(serde_json::Value::Null));
        }
    }
    if !rows.is_empty() {
        let share = started.elapsed() / rows.len() as u32;
        for _ in &rows {
            metrics.action_took("insert", share);
        }
    }
    Ok(())
}

/// A row inserted in bulk that cannot be given to its event: the pass is abandoned.
fn unmatched(insert: &Insert) -> ActionError {
    ActionError::InvalidValue(format!(
        "a row inserted into {} in bulk could not be matched to its event",
        insert.table
    ))
}

/// The row each of `chunk`'s events inserted, in the chunk's order: `None` for an event whose
/// row was not inserted (it met an existing row under `ignore`).
fn match_rows(
    key: &RowKey,
    insert: &Insert,
    chunk: &[BulkRow],
    returned: &[db::Row],
) -> Result<Vec<Option<serde_json::Value>>, ActionError> {
    let mut waiting: HashMap<&[String], VecDeque<usize>> = HashMap::with_capacity(chunk.len());
    for (position, row) in chunk.iter().enumerate() {
        waiting
            .entry(row.key.as_slice())
            .or_default()
            .push_back(position);
    }
    let mut kept = vec![None; chunk.len()];
    for row in returned {
        let json = row.to_json(Some(insert.table_columns()))?;
        let parts = key
            .parts
            .iter()
            .map(|(at, kind)| {
                let column = insert.values()[*at].column.as_str();
                kind.of_json(json.get(column)?)
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| unmatched(insert))?;
        let position = waiting
            .get_mut(parts.as_slice())
            .and_then(VecDeque::pop_front)
            .ok_or_else(|| unmatched(insert))?;
        kept[position] = Some(serde_json::Value::Object(json));
    }
    if matches!(insert.conflict(), Conflict::Fail) && kept.iter().any(Option::is_none) {
        return Err(unmatched(insert));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use crate::test_project::load_project;

    const TABLES: &str = "CREATE TABLE people (id TEXT PRIMARY KEY, email TEXT UNIQUE, name TEXT);
CREATE TABLE notes (body TEXT);
CREATE TABLE owned (id TEXT PRIMARY KEY, person TEXT REFERENCES people (id));
CREATE TABLE watched (id TEXT PRIMARY KEY);
CREATE TABLE audit (id TEXT);
CREATE TRIGGER watched_audit AFTER INSERT ON watched BEGIN INSERT INTO audit VALUES (new.id); END;
CREATE TABLE serial (n INTEGER PRIMARY KEY, label TEXT);
CREATE TABLE padded (code CHAR(3) PRIMARY KEY);
CREATE TABLE replaced (id TEXT PRIMARY KEY ON CONFLICT REPLACE);
";

    /// Whether each route (one action each, or the given actions) may run in lockstep.
    async fn lockstep(actions: &[&str]) -> Vec<bool> {
        let routes: String = actions
            .iter()
            .enumerate()
            .map(|(n, action)| {
                format!("  - name: r{n}\n    on: {{topic: t.events}}\n    actions:\n{action}\n")
            })
            .collect();
        let project = load_project(&[
            ("migrations/20270101000000_tables.sql", TABLES),
            ("routes/r.yaml", &format!("routes:\n{routes}")),
        ])
        .await;
        project
            .routes
            .routes
            .iter()
            .map(|route| route.lockstep)
            .collect()
    }

    #[tokio::test]
    async fn a_route_runs_in_lockstep_only_where_nothing_could_tell() {
        let marks = lockstep(&[
            // The primary key is among the values: rows come back matched by it.
            "      - insert: {table: people, values: {id: x, name: n}, as: p}\n      - emit: {topic: t.out, eventType: E, key: k}",
            // A unique column (the conflict target) identifies the row too.
            "      - insert: {table: people, values: {email: e, name: n}, on_conflict: {columns: [email], do: ignore}, as: p}",
            // No row kept: no key needed.
            "      - insert: {table: notes, values: {body: b}}",
            // A kept row without a unique key among the values cannot be matched.
            "      - insert: {table: notes, values: {body: b}, as: n}",
            "      - insert: {table: people, values: {name: n}, as: p}",
            // An update on conflict could meet its own row twice in one statement.
            "      - insert: {table: people, values: {id: x}, on_conflict: {columns: [id], do: update}}",
            // A foreign key could be satisfied by a later event's row; a trigger sees rows.
            "      - insert: {table: owned, values: {id: x, person: p}}",
            "      - insert: {table: watched, values: {id: x}}",
            // Reads see other events' rows.
            "      - query: {table: notes, as: q}",
            // SQLite's INTEGER PRIMARY KEY is a unique key too.
            "      - insert: {table: serial, values: {n: 1, label: l}, as: s}",
            // A key the database may store otherwise than bound (padded) matches nothing.
            "      - insert: {table: padded, values: {code: ab}, as: p}",
            // A conflict that replaces rows lets one key in twice in one statement.
            "      - insert: {table: replaced, values: {id: x}, as: r}",
        ])
        .await;
        assert_eq!(
            marks,
            [true, true, true, false, false, false, false, false, false, true, false, false]
        );
    }
}
