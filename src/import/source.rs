//! Where the original data comes from: the original CRM's PostgreSQL database, or a file of
//! JSON lines (`{"table": "users", "row": {...}}`, one row per line, in the order to import).

use std::path::PathBuf;

use futures_util::TryStreamExt;
use serde_json::{Map, Value};
use sqlx::postgres::PgPoolOptions;
use tokio::io::AsyncBufReadExt;

use super::original::OriginalTable;
use super::ImportError;

/// A source of rows.
#[derive(Debug, Clone)]
pub enum Source {
    /// The original CRM's database (`postgres://…`), read table by table.
    Postgres(String),
    /// A JSON lines file.
    JsonLines(PathBuf),
}

impl Source {
    /// A PostgreSQL URL, or else a path.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Self::Postgres(text.to_owned())
        } else {
            Self::JsonLines(PathBuf::from(text))
        }
    }

    /// What to call it in messages (a URL without its password).
    pub fn display(&self) -> String {
        match self {
            Self::Postgres(url) => match url::Url::parse(url) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("***"));
                    }
                    parsed.to_string()
                }
                Err(_) => "the PostgreSQL URL".to_owned(),
            },
            Self::JsonLines(path) => path.display().to_string(),
        }
    }
}

/// One row of the source, or why it could not be read as one.
#[derive(Debug, Clone)]
pub struct SourceRow {
    /// Its table, or the name it gave instead of a known one.
    pub table: Result<OriginalTable, String>,
    /// Its line in a JSON lines file.
    pub line: Option<usize>,
    /// The row, or what was wrong with its line.
    pub row: Result<Map<String, Value>, String>,
}

/// Calls `each` with every row of `source`, in import order, after `expected` with how many
/// there are. `each` returning `false` stops the reading.
pub async fn read<F>(
    source: &Source,
    mut expected: impl FnMut(u64),
    mut each: F,
) -> Result<(), ImportError>
where
    F: AsyncFnMut(SourceRow) -> Result<bool, ImportError>,
{
    match source {
        Source::Postgres(url) => read_postgres(url, &mut expected, &mut each).await,
        Source::JsonLines(path) => read_json_lines(path, &mut expected, &mut each).await,
    }
}

async fn read_postgres<F>(
    url: &str,
    expected: &mut impl FnMut(u64),
    each: &mut F,
) -> Result<(), ImportError>
where
    F: AsyncFnMut(SourceRow) -> Result<bool, ImportError>,
{
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .map_err(|error| ImportError::Source(format!("cannot connect: {error}")))?;
    // One snapshot for every table, so rows written to a live original database meanwhile
    // cannot leave a task whose customer was not read.
    let mut snapshot = pool.begin().await.map_err(source_failed)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *snapshot)
        .await
        .map_err(source_failed)?;
    let mut present = Vec::new();
    let mut total = 0;
    for table in OriginalTable::ALL {
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(format!("public.{}", table.name()))
            .fetch_one(&mut *snapshot)
            .await
            .map_err(source_failed)?;
        if exists.is_some() {
            // The table name is one of ours, never input; qualified as it was looked up.
            let count: i64 =
                sqlx::query_scalar(&format!("SELECT COUNT(*) FROM public.\"{}\"", table.name()))
                    .fetch_one(&mut *snapshot)
                    .await
                    .map_err(source_failed)?;
            total += u64::try_from(count).unwrap_or(0);
            present.push(table);
        }
    }
    if present.is_empty() {
        return Err(ImportError::Source(format!(
            "the database has none of the original CRM's tables ({}) in schema public",
            OriginalTable::names()
        )));
    }
    expected(total);
    for table in present {
        let sql = format!(
            "SELECT row_to_json(original)::text FROM public.\"{}\" AS original ORDER BY id",
            table.name()
        );
        let mut rows = sqlx::query_scalar::<_, String>(&sql).fetch(&mut *snapshot);
        while let Some(text) = rows.try_next().await.map_err(source_failed)? {
            let row = serde_json::from_str::<Map<String, Value>>(&text)
                .map_err(|error| error.to_string());
            let keep_going = each(SourceRow {
                table: Ok(table),
                line: None,
                row,
            })
            .await?;
            if !keep_going {
                return Ok(());
            }
        }
    }
    Ok(())
}

async fn read_json_lines<F>(
    path: &std::path::Path,
    expected: &mut impl FnMut(u64),
    each: &mut F,
) -> Result<(), ImportError>
where
    F: AsyncFnMut(SourceRow) -> Result<bool, ImportError>,
{
    let opened = || async {
        tokio::fs::File::open(path)
            .await
            .map(tokio::io::BufReader::new)
            .map_err(|error| {
                ImportError::Source(format!("cannot read {}: {error}", path.display()))
            })
    };
    // Bytes, not `lines()`: a line that is not UTF-8 is that line's refusal, not the end of
    // the import.
    let mut bytes = Vec::new();
    let mut count = 0;
    let mut reader = opened().await?;
    while reader
        .read_until(b'\n', &mut bytes)
        .await
        .map_err(io_failed)?
        > 0
    {
        if !bytes.trim_ascii().is_empty() {
            count += 1;
        }
        bytes.clear();
    }
    expected(count);
    let mut reader = opened().await?;
    let mut number = 0;
    while reader
        .read_until(b'\n', &mut bytes)
        .await
        .map_err(io_failed)?
        > 0
    {
        number += 1;
        let mut line = bytes.trim_ascii();
        if number == 1 {
            // A byte-order mark, as editors on Windows write one.
            line = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
        }
        if !line.is_empty() {
            let row = match std::str::from_utf8(line) {
                Ok(text) => json_line(text, number),
                Err(error) => SourceRow {
                    table: Err(UNREADABLE.into()),
                    line: Some(number),
                    row: Err(format!("not UTF-8 text: {error}")),
                },
            };
            if !each(row).await? {
                break;
            }
        }
        bytes.clear();
    }
    Ok(())
}

/// The table of a line that is not a JSON object.
pub const UNREADABLE: &str = "(unreadable line)";

/// One line of a JSON lines file.
fn json_line(line: &str, number: usize) -> SourceRow {
    let parsed = serde_json::from_str::<Map<String, Value>>(line);
    let mut object = match parsed {
        Ok(object) => object,
        Err(error) => {
            return SourceRow {
                table: Err(UNREADABLE.into()),
                line: Some(number),
                row: Err(format!("not a JSON object: {error}")),
            }
        }
    };
    let table = match object.get("table") {
        Some(Value::String(name)) => OriginalTable::named(name).ok_or_else(|| name.clone()),
        _ => Err("(no table)".into()),
    };
    let row = match object.remove("row") {
        Some(Value::Object(row)) => Ok(row),
        _ => Err("`row` must be an object of the original's columns".into()),
    };
    SourceRow {
        table,
        line: Some(number),
        row,
    }
}

fn source_failed(error: sqlx::Error) -> ImportError {
    ImportError::Source(format!("reading the original database failed: {error}"))
}

fn io_failed(error: std::io::Error) -> ImportError {
    ImportError::Source(format!("reading the file failed: {error}"))
}
