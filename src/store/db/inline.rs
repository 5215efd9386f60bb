//! SQLite statements run on the caller's own thread.
//!
//! sqlx runs every SQLite statement on a worker thread of the connection's own: each statement
//! is a message there and a wake-up back, two thread switches that cost more than the
//! statement itself for the daemon's small ones. An [`Inline`] takes the connection's handle
//! out of the worker once ([`sqlx::sqlite::SqliteConnection::lock_handle`]) and runs any number
//! of statements directly through rusqlite on that handle, until it is dropped and the worker
//! has it back. Transactions still begin and commit through sqlx (so the fsync of a commit
//! stays off the async threads); an [`Inline`] on a transaction runs inside it.
//!
//! Only statements that never wait run here: inside a write transaction SQLite already holds
//! the write lock, and in WAL mode readers do not wait for writers.

use std::borrow::Cow;
use std::sync::Arc;

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::sqlite::LockedSqliteHandle;

use super::param::SqliteValue;
use super::{Done, Param, Row};

/// A SQLite connection's handle, taken from its worker thread for as long as this lives.
pub struct Inline<'c> {
    // Dropped before the lock: rusqlite must let go of the handle first.
    connection: rusqlite::Connection,
    _lock: LockedSqliteHandle<'c>,
}

impl std::fmt::Debug for Inline<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Inline")
    }
}

/// How many prepared statements an [`Inline`] keeps: a batch's route statements, the
/// engine's own and a list page's.
const STATEMENT_CACHE: usize = 64;

impl<'c> Inline<'c> {
    /// Takes the handle of `connection` from its worker (one round trip to that thread).
    pub(super) async fn lock(
        connection: &'c mut sqlx::sqlite::SqliteConnection,
    ) -> Result<Self, sqlx::Error> {
        let mut lock = connection.lock_handle().await?;
        // SAFETY: the handle stays open and untouched by sqlx's worker while `lock` lives, and
        // `connection` is declared first, so it is dropped before `lock`. `from_handle` does
        // not take ownership: dropping it finalizes its own statements and leaves the handle
        // open for sqlx.
        let connection =
            unsafe { rusqlite::Connection::from_handle(lock.as_raw_handle().as_ptr()) }
                .map_err(into_sqlx)?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Self {
            connection,
            _lock: lock,
        })
    }

    /// The connection, for statements.
    pub(super) fn connection(&mut self) -> &mut rusqlite::Connection {
        &mut self.connection
    }
}

/// Runs `sql` and collects what it returns.
pub(super) fn run(
    connection: &rusqlite::Connection,
    sql: &str,
    params: &[Param<'_>],
    persistent: bool,
    limit: Option<usize>,
) -> Result<(Done, Vec<Row>), sqlx::Error> {
    let mut rows = Vec::new();
    // Named once per statement, and only when it returns a row that is kept: most of a
    // batch's statements return none.
    let mut columns: Option<Arc<[String]>> = None;
    // Every row is stepped through even past `limit`, so that a statement's writes all
    // happen, as sqlx's `fetch_optional` does.
    for_each_row(connection, sql, params, persistent, |row| {
        if limit.is_some_and(|limit| rows.len() >= limit) {
            return Ok(());
        }
        let columns = columns.get_or_insert_with(|| {
            let statement: &rusqlite::Statement<'_> = row.as_ref();
            statement
                .column_names()
                .into_iter()
                .map(str::to_owned)
                .collect()
        });
        let values = (0..columns.len())
            .map(|index| row.get_ref(index).map(Value::from))
            .collect::<Result<Vec<_>, _>>()
            .map_err(into_sqlx)?;
        rows.push(Row::Inline(InlineRow {
            columns: Arc::clone(columns),
            values,
        }));
        Ok(())
    })?;
    let done = Done {
        rows_affected: connection.changes(),
    };
    Ok((done, rows))
}

/// Runs `sql` and hands each row to `visit` with its values still in SQLite's buffers, so a
/// caller that only writes them somewhere copies nothing in between.
pub(super) fn for_each_row(
    connection: &rusqlite::Connection,
    sql: &str,
    params: &[Param<'_>],
    persistent: bool,
    mut visit: impl FnMut(&rusqlite::Row<'_>) -> Result<(), sqlx::Error>,
) -> Result<(), sqlx::Error> {
    let sql = numbered_placeholders(sql);
    let mut cached;
    let mut fresh;
    let statement: &mut rusqlite::Statement<'_> = if persistent {
        cached = connection.prepare_cached(&sql).map_err(into_sqlx)?;
        &mut cached
    } else {
        fresh = connection.prepare(&sql).map_err(into_sqlx)?;
        &mut fresh
    };
    bind(statement, params)?;
    let mut rows = statement.raw_query();
    while let Some(row) = rows.next().map_err(into_sqlx)? {
        visit(row)?;
    }
    Ok(())
}

/// Runs statements without parameters, one after another.
pub(super) fn run_batch(connection: &rusqlite::Connection, sql: &str) -> Result<(), sqlx::Error> {
    connection.execute_batch(sql).map_err(into_sqlx)
}

/// Binds `params` in order: after [`numbered_placeholders`], parameter `n` is `params[n - 1]`.
fn bind(statement: &mut rusqlite::Statement<'_>, params: &[Param<'_>]) -> Result<(), sqlx::Error> {
    let count = statement.parameter_count();
    if count > params.len() {
        return Err(sqlx::Error::Protocol(format!(
            "statement has {count} parameters, but only {} are bound",
            params.len()
        )));
    }
    for (index, param) in params.iter().enumerate().take(count) {
        statement
            .raw_bind_parameter(index + 1, sqlite_value(param)?)
            .map_err(into_sqlx)?;
    }
    Ok(())
}

/// `sql` with each `$n` placeholder written `?n`.
///
/// SQLite treats `$1` as a parameter *named* "$1" and numbers named parameters in order of
/// appearance, so finding which number a name got takes a scan of every name before it, both
/// while SQLite parses the statement and for each bind: quadratic in the parameters, which
/// showed as the top of the profile for the multi-row statements of a batch. `?n` is
/// parameter `n` itself. Quoted text, quoted names and comments are left as they are.
fn numbered_placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let bytes = sql.as_bytes();
    let mut rewritten = String::with_capacity(sql.len());
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            quote @ (b'\'' | b'"' | b'`') => {
                // To the closing quote; a doubled quote inside is an escaped one and is
                // skipped as two closings in a row.
                at += 1;
                while at < bytes.len() && bytes[at] != quote {
                    at += 1;
                }
                at += 1;
            }
            b'-' if bytes.get(at + 1) == Some(&b'-') => {
                while at < bytes.len() && bytes[at] != b'\n' {
                    at += 1;
                }
            }
            b'/' if bytes.get(at + 1) == Some(&b'*') => {
                at = sql[at + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |end| at + 2 + end + 2);
            }
            b'$' if bytes.get(at + 1).is_some_and(u8::is_ascii_digit) => {
                rewritten.push_str(&sql[copied..at]);
                rewritten.push('?');
                copied = at + 1;
                at += 1;
            }
            _ => at += 1,
        }
    }
    rewritten.push_str(&sql[copied..]);
    Cow::Owned(rewritten)
}

/// The value SQLite stores for `param`: the same as sqlx's SQLite binding of it.
fn sqlite_value<'p>(param: &'p Param<'_>) -> Result<ToSqlOutput<'p>, sqlx::Error> {
    let value = param
        .sqlite_value()
        .map_err(|error| sqlx::Error::Encode(error.into()))?;
    Ok(match value {
        SqliteValue::Null => ToSqlOutput::Owned(Value::Null),
        SqliteValue::Int(integer) => ToSqlOutput::Owned(Value::Integer(integer)),
        SqliteValue::Float(float) => ToSqlOutput::Owned(Value::Real(float)),
        SqliteValue::Text(Cow::Borrowed(text)) => {
            ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes()))
        }
        SqliteValue::Text(Cow::Owned(text)) => ToSqlOutput::Owned(Value::Text(text)),
        SqliteValue::Blob(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
    })
}

/// A row read inline: its column names and values by storage class.
#[derive(Clone)]
pub struct InlineRow {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl InlineRow {
    /// Column names in order.
    pub(super) fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The value at `index`.
    pub(super) fn value(&self, index: usize) -> Result<ValueRef<'_>, sqlx::Error> {
        self.values.get(index).map(ValueRef::from).ok_or_else(|| {
            sqlx::Error::ColumnIndexOutOfBounds {
                index,
                len: self.values.len(),
            }
        })
    }

    /// The position of the column named `name`.
    pub(super) fn position(&self, name: &str) -> Result<usize, sqlx::Error> {
        self.columns
            .iter()
            .position(|column| column == name)
            .ok_or_else(|| sqlx::Error::ColumnNotFound(name.to_owned()))
    }
}

/// A SQLite error reported by rusqlite, as sqlx reports one: the extended result code as
/// [`DatabaseError::code`] (what the daemon classifies by) and SQLite's message.
#[derive(Debug)]
struct InlineError {
    code: String,
    extended: i32,
    message: String,
}

impl std::fmt::Display for InlineError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "(code: {}) {}", self.extended, self.message)
    }
}

impl std::error::Error for InlineError {}

impl DatabaseError for InlineError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(std::borrow::Cow::Borrowed(&self.code))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        use rusqlite::ffi;
        match self.extended {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

pub(super) fn into_sqlx(error: rusqlite::Error) -> sqlx::Error {
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => {
            let message = message.unwrap_or_else(|| failure.to_string());
            sqlx::Error::Database(Box::new(InlineError {
                code: failure.extended_code.to_string(),
                extended: failure.extended_code,
                message,
            }))
        }
        other => sqlx::Error::Protocol(format!("SQLite: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    use super::numbered_placeholders;
    use crate::store::db::{query, Param, Pool};

    async fn pool(directory: &tempfile::TempDir) -> Pool {
        let options = SqliteConnectOptions::new()
            .filename(directory.path().join("inline.db"))
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        Pool::Sqlite(pool)
    }

    #[tokio::test]
    async fn inline_statements_write_read_and_fail_as_through_sqlx() {
        let directory = tempfile::tempdir().unwrap();
        let pool = pool(&directory).await;
        pool.acquire()
            .await
            .unwrap()
            .execute_batch(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, flag BOOLEAN, \
                 day TEXT, bytes BLOB, ratio REAL, note TEXT)",
            )
            .await
            .unwrap();
        let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        {
            let mut lock = transaction.lock().await.unwrap();
            let mut connection = lock.conn();
            // Placeholders named out of order bind by their number, as through sqlx.
            let (id, name): (i64, String) = query(
                "INSERT INTO t (name, flag, day, bytes, ratio, note) \
                 VALUES ($2, $1, $3, $4, $5, '$1 stays text') RETURNING id, name",
            )
            .bind(true)
            .bind("a")
            .bind(Param::Date(
                chrono::NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
            ))
            .bind(&b"\x00\x01"[..])
            .bind(1.5)
            .fetch_one_as(&mut connection)
            .await
            .unwrap();
            assert_eq!((id, name.as_str()), (1, "a"));

            // A savepoint rolled back, or dropped without a commit, undoes its own rows only
            // (and SQLite hands the freed rowid out again).
            let mut savepoint = connection.begin().await.unwrap();
            query("INSERT INTO t (name) VALUES ($1)")
                .bind("rolled back")
                .execute(&mut savepoint)
                .await
                .unwrap();
            savepoint.rollback().await.unwrap();
            let mut savepoint = connection.begin().await.unwrap();
            let mut nested = savepoint.begin().await.unwrap();
            query("INSERT INTO t (name) VALUES ($1)")
                .bind("dropped")
                .execute(&mut nested)
                .await
                .unwrap();
            drop(nested);
            query("INSERT INTO t (name) VALUES ($1)")
                .bind("kept")
                .execute(&mut savepoint)
                .await
                .unwrap();
            savepoint.commit().await.unwrap();

            let error = query("INSERT INTO t (name) VALUES ($1)")
                .bind("a")
                .execute(&mut connection)
                .await
                .unwrap_err();
            assert!(crate::crm::is_unique_violation(&error), "{error}");
            assert_eq!(
                error.to_string(),
                "error returned from database: (code: 2067) UNIQUE constraint failed: t.name"
            );
        }
        transaction.commit().await.unwrap();

        let select = "SELECT id, name, flag, day, bytes, ratio, note FROM t ORDER BY id";
        let through_sqlx: Vec<_> = query(select)
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|row| row.to_json(None).unwrap())
            .collect();
        let mut connection = pool.acquire().await.unwrap();
        let mut lock = connection.lock().await.unwrap();
        let inline: Vec<_> = query(select)
            .fetch_all(&mut lock.conn())
            .await
            .unwrap()
            .iter()
            .map(|row| row.to_json(None).unwrap())
            .collect();
        assert_eq!(inline, through_sqlx);
        assert_eq!(
            serde_json::Value::from(
                inline
                    .into_iter()
                    .map(serde_json::Value::Object)
                    .collect::<Vec<_>>()
            ),
            serde_json::json!([
                {"id": 1, "name": "a", "flag": 1, "day": "2026-11-29", "bytes": "AAE=",
                 "ratio": 1.5, "note": "$1 stays text"},
                {"id": 2, "name": "kept", "flag": null, "day": null, "bytes": null,
                 "ratio": null, "note": null},
            ])
        );
    }

    #[test]
    fn placeholders_become_numbered_outside_quotes_and_comments() {
        assert_eq!(
            numbered_placeholders("SELECT $1, $12 FROM t WHERE a = $2"),
            "SELECT ?1, ?12 FROM t WHERE a = ?2"
        );
        assert_eq!(
            numbered_placeholders(
                "SELECT json_extract(x, '$.a'), '$1', 'it''s $2', \"$3\" -- $4\n, $5 /* $6 */ + $7"
            ),
            "SELECT json_extract(x, '$.a'), '$1', 'it''s $2', \"$3\" -- $4\n, ?5 /* $6 */ + ?7"
        );
        assert_eq!(numbered_placeholders("SELECT 1"), "SELECT 1");
        assert_eq!(numbered_placeholders("SELECT '$1"), "SELECT '$1");
    }
}
