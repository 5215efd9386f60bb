//! `crm-router import`: the original CRM's users, customers, meetings, tasks, approval requests
//! and notifications, from its PostgreSQL database or a JSON lines file, into our tables.
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

use std::collections::BTreeMap;
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

impl fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} {}", self.table, self.key)?;
        if let Some(line) = self.line {
            write!(formatter, " (line {line})")?;
        }
        write!(formatter, ": {}", self.reason)
    }
}

/// Rows of one table by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Written.
    pub imported: u64,
    /// Already here (same id), left as they are.
    pub present: u64,
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

/// Imports every row of `source` into `store`, ticking `progress` once per row.
pub async fn import(
    store: &Store,
    source: &Source,
    on_error: OnError,
    progress: &ProgressBar,
) -> Result<Summary, ImportError> {
    let mut summary = Summary::default();
    let mut batch: Vec<Pending> = Vec::with_capacity(BATCH);
    let outcome = source::read(
        source,
        |total| progress.set_length(total),
        async |row: SourceRow| {
            progress.inc(1);
            match pending(row) {
                Ok(pending) => batch.push(pending),
                Err(refusal) => {
                    if let Some(table) = OriginalTable::named(&refusal.table) {
                        summary.counts.entry(table).or_default().refused += 1;
                    }
                    summary.refusals.push(refusal);
                    if on_error == OnError::Stop {
                        summary.stopped = true;
                        return Ok(false);
                    }
                }
            }
            if batch.len() >= BATCH {
                let stop = write(store, &mut batch, on_error, &mut summary).await?;
                return Ok(!stop);
            }
            Ok(true)
        },
    )
    .await;
    // What was read before a stop, or before the source failed, is written whole.
    if !batch.is_empty() {
        write(store, &mut batch, on_error, &mut summary).await?;
    }
    outcome?;
    Ok(summary)
}

/// A checked row, ready to write.
struct Pending {
    table: OriginalTable,
    key: String,
    line: Option<usize>,
    values: Vec<db::Param<'static>>,
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
                Err(reason) if row.line.is_some() && name == UNREADABLE => reason.clone(),
                _ => "`table` must be one of users, customers, meetings, tasks, \
                      approval_requests, notifications"
                    .to_owned(),
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

/// Writes `batch` in one transaction, counting each row; returns whether a refusal stopped the
/// import (the rows before it are written).
async fn write(
    store: &Store,
    batch: &mut Vec<Pending>,
    on_error: OnError,
    summary: &mut Summary,
) -> Result<bool, ImportError> {
    let mut transaction = store.begin().await?;
    let mut stopped = false;
    for row in batch.drain(..) {
        if stopped {
            continue;
        }
        let counts = summary.counts.entry(row.table).or_default();
        match insert(&mut transaction, &row).await? {
            Written::Imported => counts.imported += 1,
            Written::Present => counts.present += 1,
            Written::Conflict => {
                counts.refused += 1;
                let refusal = Refusal {
                    table: row.table.name().to_owned(),
                    key: row.key,
                    line: row.line,
                    reason: "another row already has its email (emails are unique)".into(),
                };
                summary.refusals.push(refusal);
                if on_error == OnError::Stop {
                    summary.stopped = true;
                    stopped = true;
                }
            }
        }
    }
    transaction.commit().await?;
    Ok(stopped)
}

/// What writing one row did.
enum Written {
    Imported,
    Present,
    Conflict,
}

async fn insert(connection: &mut Conn<'_>, row: &Pending) -> Result<Written, sqlx::Error> {
    let (table, columns) = row.table.target();
    let placeholders: Vec<String> = (1..=columns.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT DO NOTHING",
        columns.join(", "),
        placeholders.join(", ")
    );
    let done = db::query(&sql)
        .bind_all(row.values.iter().cloned())
        .execute(&mut *connection)
        .await?;
    if done.rows_affected() == 1 {
        return Ok(Written::Imported);
    }
    let present = db::query(&format!("SELECT id FROM {table} WHERE id = $1"))
        .bind(row.key.as_str())
        .fetch_optional(&mut *connection)
        .await?;
    Ok(if present.is_some() {
        Written::Present
    } else {
        Written::Conflict
    })
}
