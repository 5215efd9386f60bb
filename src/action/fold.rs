//! Counter increments folded across a batch: one statement per key instead of one per event.
//!
//! Every event of a type on a day increments the same analytics row, so a batch of 500 events
//! ran 500 upserts on four rows. An upsert is *foldable* when nothing can tell the folded
//! statement from the sequence it replaces: it only increments (no `set:`, so no value is
//! overwritten in between), keeps no row (`as:`), and no other step of the route set reads or
//! writes its table, so no statement of the batch could see a count half-way. Its increments
//! are then summed per key ([`Folds`]) while the batch's first pass runs and written at the end
//! of the pass (or before it turns guarded), in one statement per key. The final rows are the
//! ones the events would have left one by one: each key's row is inserted or increased by the
//! sum of what the events added.
//!
//! Intermediate counts must not be observable either, which the catalog decides
//! ([`Catalog::is_plain`]): a CHECK could refuse an event one by one whose sum passes, a trigger
//! or a view could see counts half-way, a foreign key could be satisfied only later in the
//! batch, a computed default would run once instead of per event. And the increments of one
//! key must all go one way (all added or all taken away): the counts in between then lie
//! between the first and the last, so a sum that fits its column had nothing in between that
//! overflowed. When the folded statement fails (an overflow), the pass is abandoned as for any
//! failure and the guarded pass runs the events one by one, without folding, so the event that
//! fails is the one dead-lettered. The guarded pass, replays and retries never fold.
//! What folding cannot see: a unique index on a counter column, which the intermediate counts
//! could violate; nobody indexes a counter that way.

use std::collections::HashMap;

use super::{Action, Step};
use crate::route::Route;
use crate::store::catalog::Catalog;
use crate::store::db::{self, Conn, Param};

/// The sums of a batch's foldable increments, by statement and key, in order of first use.
#[derive(Debug, Default)]
pub struct Folds {
    index: HashMap<FoldKey, usize>,
    pending: Vec<Pending>,
}

/// One statement's key: which upsert (its SQL, which lives as long as the route set the pass
/// runs) and the rendered values of its `where:` columns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FoldKey {
    statement: usize,
    key: Vec<KeyPart>,
}

/// A key value that can be hashed: what `where:` columns of counters hold. Not NULL: a unique
/// key never conflicts on a NULL, so each such event inserts a row of its own, which a sum
/// would merge into one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyPart {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl KeyPart {
    fn of(param: &Param<'_>) -> Option<Self> {
        Some(match param {
            Param::Bool(value) => Self::Bool(*value),
            Param::Int(value) => Self::Int(*value),
            Param::Text(text) => Self::Text(text.to_string()),
            _ => return None,
        })
    }
}

#[derive(Debug)]
struct Pending {
    sql: String,
    key: Vec<Param<'static>>,
    increments: Vec<i64>,
}

/// Why an event's increment was not folded: its values are not ones [`Folds`] adds up.
#[derive(Debug)]
pub struct NotFoldable;

impl Folds {
    /// Adds one event's increments to the sums of `sql` at `key`, or says that they cannot be
    /// (a key of another type, an increment that is not an integer, or a sum that would
    /// overflow); the caller then writes what is pending and runs the statement itself.
    pub fn add(
        &mut self,
        sql: &str,
        key: &[Param<'static>],
        increments: &[Param<'static>],
    ) -> Result<(), NotFoldable> {
        let parts = key
            .iter()
            .map(KeyPart::of)
            .collect::<Option<Vec<_>>>()
            .ok_or(NotFoldable)?;
        let amounts = increments
            .iter()
            .map(|param| match param {
                Param::Int(amount) => Some(*amount),
                _ => None,
            })
            .collect::<Option<Vec<i64>>>()
            .ok_or(NotFoldable)?;
        let fold_key = FoldKey {
            statement: sql.as_ptr() as usize,
            key: parts,
        };
        match self.index.get(&fold_key) {
            Some(&at) => {
                let pending = &mut self.pending[at];
                // One way only: a sum of mixed signs could hide a count in between that
                // overflowed.
                let one_way = pending
                    .increments
                    .iter()
                    .zip(&amounts)
                    .all(|(sum, amount)| sum.signum() * amount.signum() >= 0);
                if !one_way {
                    return Err(NotFoldable);
                }
                let sums = pending
                    .increments
                    .iter()
                    .zip(&amounts)
                    .map(|(sum, amount)| sum.checked_add(*amount))
                    .collect::<Option<Vec<i64>>>()
                    .ok_or(NotFoldable)?;
                pending.increments = sums;
            }
            None => {
                self.index.insert(fold_key, self.pending.len());
                self.pending.push(Pending {
                    sql: sql.to_owned(),
                    key: key.to_vec(),
                    increments: amounts,
                });
            }
        }
        Ok(())
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Writes every pending sum, one statement per key, and forgets them.
    pub async fn write(&mut self, connection: &mut Conn<'_>) -> Result<(), sqlx::Error> {
        self.index.clear();
        for pending in std::mem::take(&mut self.pending) {
            db::query(&pending.sql)
                .bind_all(pending.key)
                .bind_all(pending.increments.into_iter().map(Param::Int))
                .execute(&mut *connection)
                .await?;
        }
        Ok(())
    }
}

/// Marks the upserts of `routes` whose increments may be folded (see the module's comment):
/// only on tables the catalog knows to be plain, and none without a catalog.
pub fn mark_foldable(routes: &mut [Route], catalog: Option<&Catalog>) {
    #[derive(Default)]
    struct Use {
        upserts: Vec<String>,
        other: bool,
    }
    let mut uses: HashMap<String, Use> = HashMap::new();
    for route in routes.iter() {
        visit(&route.steps, &mut |step| {
            let (table, upsert) = match &step.action {
                Action::Upsert(upsert) => (&upsert.table, Some(upsert)),
                Action::Insert(insert) => (&insert.table, None),
                Action::Update(update) => (&update.table, None),
                Action::Query(query) => (&query.table, None),
                Action::Emit(_) | Action::Http(_) => return,
            };
            let entry = uses.entry(table.as_str().to_owned()).or_default();
            match upsert {
                Some(upsert) if upsert.only_increments() => {
                    entry.upserts.push(upsert.sql().to_owned())
                }
                _ => entry.other = true,
            }
        });
    }
    let foldable: Vec<String> = uses
        .into_iter()
        .filter(|(table, uses)| {
            catalog.is_some_and(|catalog| catalog.is_plain(table))
                && !uses.other
                && uses.upserts.windows(2).all(|pair| pair[0] == pair[1])
        })
        .map(|(table, _)| table)
        .collect();
    for route in routes.iter_mut() {
        visit_mut(&mut route.steps, &mut |step| {
            if let Action::Upsert(upsert) = &mut step.action {
                let fold = foldable.iter().any(|table| table == upsert.table.as_str());
                upsert.set_foldable(fold);
            }
        });
    }
}

fn visit(steps: &[Step], f: &mut impl FnMut(&Step)) {
    for step in steps {
        f(step);
        if let Action::Query(query) = &step.action {
            visit(&query.for_each, f);
        }
    }
}

fn visit_mut(steps: &mut [Step], f: &mut impl FnMut(&mut Step)) {
    for step in steps {
        f(step);
        if let Action::Query(query) = &mut step.action {
            visit_mut(&mut query.for_each, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_project::load_project;

    const TABLE: &str = "CREATE TABLE counts (k TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0, \
        m INTEGER NOT NULL DEFAULT 0, note TEXT);\n";

    fn route(name: &str, action: &str) -> String {
        format!("  - name: {name}\n    on: {{topic: t.events}}\n    actions:\n      - {action}\n")
    }

    async fn foldable(routes: &[String]) -> Vec<bool> {
        foldable_on(TABLE, routes).await
    }

    async fn foldable_on(table: &str, routes: &[String]) -> Vec<bool> {
        let file = format!("routes:\n{}", routes.concat());
        let project = load_project(&[
            ("migrations/20270101000000_counts.sql", table),
            ("routes/counts.yaml", &file),
        ])
        .await;
        let mut marks = Vec::new();
        for route in &project.routes.routes {
            visit(&route.steps, &mut |step| {
                if let Action::Upsert(upsert) = &step.action {
                    marks.push(upsert.foldable());
                }
            });
        }
        marks
    }

    const INCREMENT: &str = "upsert: {table: counts, where: {k: x}, increment: {n: 1}}";

    #[tokio::test]
    async fn only_increments_nobody_else_sees_are_folded() {
        assert_eq!(foldable(&[route("a", INCREMENT)]).await, [true]);
        // The same statement from two routes adds up the same way.
        assert_eq!(
            foldable(&[route("a", INCREMENT), route("b", INCREMENT)]).await,
            [true, true]
        );
        // A step that reads the table could see a count half-way.
        let read = "query: {table: counts, where: {k: x}, as: seen}";
        assert_eq!(
            foldable(&[route("a", INCREMENT), route("b", read)]).await,
            [false]
        );
        // `set:` overwrites in between; `as:` keeps the row of each event.
        let set = "upsert: {table: counts, where: {k: x}, set: {note: y}, increment: {n: 1}}";
        assert_eq!(foldable(&[route("a", set)]).await, [false]);
        let kept = "upsert: {table: counts, where: {k: x}, increment: {n: 1}, as: row}";
        assert_eq!(foldable(&[route("a", kept)]).await, [false]);
        // A CHECK, a trigger or a view could tell the counts in between from the sum.
        let checked = "CREATE TABLE counts (k TEXT PRIMARY KEY, n INTEGER CHECK (n < 10));\n";
        assert_eq!(
            foldable_on(checked, &[route("a", INCREMENT)]).await,
            [false]
        );
        let watched = format!("{TABLE}CREATE VIEW totals AS SELECT SUM(n) AS n FROM counts;\n");
        assert_eq!(
            foldable_on(&watched, &[route("a", INCREMENT)]).await,
            [false]
        );
        let stamped = "CREATE TABLE counts (k TEXT PRIMARY KEY, n INTEGER, \
                       at TEXT DEFAULT (datetime('now')));\n";
        assert_eq!(
            foldable_on(stamped, &[route("a", INCREMENT)]).await,
            [false]
        );
        // Other amounts are the same statement (amounts are parameters)...
        let more = "upsert: {table: counts, where: {k: x}, increment: {n: 2}}";
        assert_eq!(
            foldable(&[route("a", INCREMENT), route("b", more)]).await,
            [true, true]
        );
        // ...but two statements on one table are not folded.
        let other = "upsert: {table: counts, where: {k: x}, increment: {m: 1}}";
        assert_eq!(
            foldable(&[route("a", INCREMENT), route("b", other)]).await,
            [false, false]
        );
    }

    #[tokio::test]
    async fn the_bundled_analytics_counts_are_folded() {
        let bundled = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("routes");
        let files: Vec<(String, String)> = std::fs::read_dir(bundled)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            // `routes/tests/` holds the routes' tests.
            .filter(|path| path.is_file())
            .map(|path| {
                let name = format!("routes/{}", path.file_name().unwrap().to_string_lossy());
                (name, std::fs::read_to_string(path).unwrap())
            })
            .collect();
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str()))
            .collect();
        let project = load_project(&files).await;
        let analytics = project
            .routes
            .routes
            .iter()
            .find(|route| route.name.as_str() == "analytics-daily-counts")
            .expect("the bundled analytics route");
        assert!(matches!(&analytics.steps[0].action, Action::Upsert(upsert) if upsert.foldable()));
    }

    #[test]
    fn sums_stay_per_statement_and_key_and_refuse_what_they_cannot_add() {
        let mut folds = Folds::default();
        let sql = String::from("INSERT ...");
        let key = |k: &str| vec![Param::Text(k.to_owned().into())];
        folds.add(&sql, &key("a"), &[Param::Int(2)]).unwrap();
        folds.add(&sql, &key("b"), &[Param::Int(1)]).unwrap();
        folds.add(&sql, &key("a"), &[Param::Int(3)]).unwrap();
        assert_eq!(folds.pending.len(), 2);
        assert_eq!(folds.pending[0].increments, [5]);
        assert!(folds.add(&sql, &key("a"), &[Param::Float(0.5)]).is_err());
        assert!(folds.add(&sql, &key("b"), &[Param::Int(i64::MAX)]).is_err());
        // One way only: a count in between could have overflowed where the sum does not.
        assert!(folds.add(&sql, &key("a"), &[Param::Int(-4)]).is_err());
        let null = [Param::Null(db::Kind::Text)];
        assert!(
            folds.add(&sql, &null, &[Param::Int(1)]).is_err(),
            "NULL keys never conflict: one row per event, not one sum"
        );
        assert_eq!(
            (
                folds.pending[0].increments[0],
                folds.pending[1].increments[0]
            ),
            (5, 1),
            "a refused add changes nothing"
        );
    }
}
