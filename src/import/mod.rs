//! `crm-router import`: the original CRM's users, customers, meetings, tasks, approval requests,
//! notifications and audit log, from its PostgreSQL database or a JSON lines file, into our
//! tables.
//!
//! Rows are written as they were, without events: the original already did what the routes
//! would do for them (a customer for each user, a first-contact task for each customer), so
//! nothing reacts to an import. A row whose id is already here is left as it is, which makes a
//! second import change nothing. Every row is checked before it is written and is one
//! statement, so a bad row is never half-applied: it is reported with its table, key (and line)
//! and skipped, or it stops the import there ([`OnError`]). Users keep their bcrypt hashes,
//! which verify at login and are replaced by Argon2id then (`auth::password`).

pub mod original;
pub mod source;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use indicatif::ProgressBar;
use serde_json::Value;
use thiserror::Error;

use crate::store::db::{self, Conn};
use crate::store::{Store, StoreError};
use original::OriginalTable;
use source::{Source, SourceRow, UNREADABLE};

/// What a bad row does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnError {
    /// Report it and go on with the next row.
    Skip,
    /// Report it and import nothing after it.
    Stop,
}

/// Why an import could not run (a bad row is not this: it is a [`Refusal`]).
#[derive(Debug, Error)]
pub enum ImportError {
    /// The source could not be read.
    #[error("{0}")]
    Source(String),
    /// Our database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Our database could not be opened or begun.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A row that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The original table, as the source named it.
    pub table: String,
    /// The row's id (`?` when it has none).
    pub key: String,
    /// Its line, in a JSON lines file.
    pub line: Option<usize>,
    /// What is wrong with it.
    pub reason: String,
}

/// `text` with control characters escaped: a table name or key comes from the source, and an
/// escape sequence in it must not reach the operator's terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|character| {
            if character.is_control() {
                character.escape_default().to_string()
            } else {
                character.to_string()
            }
        })
        .collect()
}

impl fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} {}",
            printable(&self.table),
            printable(&self.key)
        )?;
        if let Some(line) = self.line {
            write!(formatter, " (line {line})")?;
        }
        write!(formatter, ": {}", printable(&self.reason))
    }
}

/// Rows of one table by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Written.
    pub imported: u64,
    /// Already here (same id), left as they are.
    pub present: u64,
    /// Users whose email a user here already has: taken to be that user, whose id the rows
    /// pointing at them get (their password and role here stay).
    pub merged: u64,
    /// Refused.
    pub refused: u64,
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Per original table, in import order.
    pub counts: BTreeMap<OriginalTable, Counts>,
    /// Every refused row, in source order.
    pub refusals: Vec<Refusal>,
    /// Whether a refusal stopped the import ([`OnError::Stop`]).
    pub stopped: bool,
}

/// Rows written per transaction: large enough that SQLite's commit (an fsync) is paid rarely.
const BATCH: usize = 500;

/// The state of one import run.
struct Run<'a> {
    store: &'a Store,
    on_error: OnError,
    summary: Summary,
    /// Checked rows not written yet, in source order.
    batch: Vec<Pending>,
    /// Ids seen per table, so a source that repeats one is told so.
    seen: HashMap<OriginalTable, HashSet<String>>,
    /// Original user id → the id of the user here with the same email.
    merged_users: HashMap<String, String>,
    /// Each table's statements, built once per run rather than once per row.
    statements: HashMap<OriginalTable, Statements>,
}

impl Run<'_> {
    /// Takes one source row; `false` when the import must stop.
    async fn take(&mut self, row: SourceRow) -> Result<bool, ImportError> {
        let refusal = match pending(row) {
            Ok(pending) => {
                let seen = self.seen.entry(pending.table).or_default();
                if seen.insert(pending.key.clone()) {
                    self.batch.push(pending);
                    if self.batch.len() >= BATCH {
                        return self.write().await;
                    }
                    return Ok(true);
                }
                Refusal {
                    table: pending.table.name().to_owned(),
                    key: pending.key,
                    line: pending.line,
                    reason: "the source has another row with this id before it".into(),
                }
            }
            Err(refusal) => refusal,
        };
        // The rows before a refusal are written first, so refusals are reported in source
        // order and a stop leaves exactly the rows before it.
        if !self.write().await? {
            return Ok(false);
        }
        Ok(self.refuse(refusal))
    }

    /// Records a refusal; `false` when it stops the import.
    fn refuse(&mut self, refusal: Refusal) -> bool {
        if let Some(table) = OriginalTable::named(&refusal.table) {
            self.summary.counts.entry(table).or_default().refused += 1;
        }
        self.summary.refusals.push(refusal);
        if self.on_error == OnError::Stop {
            self.summary.stopped = true;
            return false;
        }
        true
    }

    /// Writes the batch in one transaction; `false` when a refusal stopped the import (the
    /// rows before it are written).
    async fn write(&mut self) -> Result<bool, ImportError> {
        if self.batch.is_empty() {
            return Ok(true);
        }
        let mut transaction = self.store.begin().await?;
        let mut going = true;
        for mut row in std::mem::take(&mut self.batch) {
            if !going {
                continue;
            }
            row.point_at_merged_users(&self.merged_users);
            let statements = self
                .statements
                .entry(row.table)
                .or_insert_with(|| Statements::of(row.table));
            let written = insert(&mut transaction, statements, &mut row).await?;
            let counts = self.summary.counts.entry(row.table).or_default();
            match written {
                Written::Imported => counts.imported += 1,
                Written::Present => counts.present += 1,
                Written::Merged(existing) => {
                    counts.merged += 1;
                    self.merged_users.insert(row.key, existing);
                }
                Written::Conflict => {
                    going = self.refuse(Refusal {
                        table: row.table.name().to_owned(),
                        key: row.key,
                        line: row.line,
                        reason: "another row here already has its email (emails are unique)".into(),
                    });
                }
            }
        }
        transaction.commit().await?;
        Ok(going)
    }
}

/// Imports every row of `source` into `store`, ticking `progress` once per row.
pub async fn import(
    store: &Store,
    source: &Source,
    on_error: OnError,
    progress: &ProgressBar,
) -> Result<Summary, ImportError> {
    let mut run = Run {
        store,
        on_error,
        summary: Summary::default(),
        batch: Vec::with_capacity(BATCH),
        seen: HashMap::new(),
        merged_users: HashMap::new(),
        statements: HashMap::new(),
    };
    let outcome = source::read(
        source,
        |total| progress.set_length(total),
        async |row: SourceRow| {
            progress.inc(1);
            run.take(row).await
        },
    )
    .await;
    // What was read before the source failed is written whole.
    run.write().await?;
    outcome?;
    Ok(run.summary)
}

/// A checked row, ready to write.
struct Pending {
    table: OriginalTable,
    key: String,
    line: Option<usize>,
    values: Vec<db::Param<'static>>,
}

impl Pending {
    /// Points the row's user columns at the users here that original users were merged into.
    fn point_at_merged_users(&mut self, merged: &HashMap<String, String>) {
        if merged.is_empty() {
            return;
        }
        let columns = self.table.target().1;
        for column in self.table.user_columns() {
            let index = columns
                .iter()
                .position(|name| name == column)
                .expect("a user column is one of the table's columns");
            if let db::Param::Text(id) = &self.values[index] {
                if let Some(existing) = merged.get(id.as_ref()) {
                    self.values[index] = db::Param::Text(existing.clone().into());
                }
            }
        }
    }
}

/// Checks one source row.
fn pending(row: SourceRow) -> Result<Pending, Refusal> {
    let key = row
        .row
        .as_ref()
        .ok()
        .and_then(|row| row.get("id"))
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    let refusal = |table: String, reason: String| Refusal {
        table,
        key: key.clone(),
        line: row.line,
        reason,
    };
    let table = match &row.table {
        Ok(table) => *table,
        Err(name) => {
            let reason = match &row.row {
                Err(reason) if name == UNREADABLE => reason.clone(),
                _ => format!("`table` must be one of {}", OriginalTable::names()),
            };
            return Err(refusal(name.clone(), reason));
        }
    };
    let fields = row
        .row
        .as_ref()
        .map_err(|reason| refusal(table.name().to_owned(), reason.clone()))?;
    let values = table
        .convert(fields)
        .map_err(|problems| refusal(table.name().to_owned(), problems.summary()))?;
    Ok(Pending {
        table,
        key: key.clone(),
        line: row.line,
        values,
    })
}

/// What writing one row did.
enum Written {
    Imported,
    Present,
    /// A user whose email the user with this id here has.
    Merged(String),
    Conflict,
}

/// The statements that write one table's rows.
struct Statements {
    /// Inserts a row unless it conflicts with one here.
    insert: String,
    /// Finds a row by id.
    by_id: String,
}

impl Statements {
    fn of(table: OriginalTable) -> Self {
        let (table, columns) = table.target();
        let placeholders: Vec<String> = (1..=columns.len()).map(|n| format!("${n}")).collect();
        // The table and column names are our own constants, never input.
        Self {
            insert: format!(
                "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT DO NOTHING",
                columns.join(", "),
                placeholders.join(", ")
            ),
            by_id: format!("SELECT id FROM {table} WHERE id = $1"),
        }
    }
}

/// Writes `row` (its values are moved into the statement, not copied).
async fn insert(
    connection: &mut Conn<'_>,
    statements: &Statements,
    row: &mut Pending,
) -> Result<Written, sqlx::Error> {
    // The email is the second value of a user; kept for the lookup below.
    let email = (row.table == OriginalTable::Users).then(|| row.values[1].clone());
    let done = db::query(&statements.insert)
        .bind_all(std::mem::take(&mut row.values))
        .execute(&mut *connection)
        .await?;
    if done.rows_affected() == 1 {
        return Ok(Written::Imported);
    }
    let present = db::query(&statements.by_id)
        .bind(row.key.as_str())
        .fetch_optional(&mut *connection)
        .await?;
    if present.is_some() {
        return Ok(Written::Present);
    }
    if let Some(email) = email {
        // Normalised as login looks users up.
        let owner: Option<(String,)> = db::query("SELECT id FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional_as(&mut *connection)
            .await?;
        if let Some((existing,)) = owner {
            return Ok(Written::Merged(existing));
        }
    }
    Ok(Written::Conflict)
}
