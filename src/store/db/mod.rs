//! The native connection of each database behind one small interface: [`Pool`], [`Conn`]
//! and [`Tx`] are SQLite or PostgreSQL, [`Query`] binds its [`Param`]s the way that database
//! wants them, and [`Row`] decodes either's values.
//!
//! This is the only place that matches on the backend to run a statement; everything above it
//! writes `db::query(sql).bind(..).fetch_all(&mut *connection)` once for both.

mod inline;
pub mod page;
mod param;
mod query;
mod readers;
mod row;

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection as _, PgPool, Postgres, Sqlite, SqlitePool};

pub use inline::{Inline, InlineRow};
pub use param::{IntoParam, Kind, Param};
pub use query::{query, query_owned, Done, Query};
pub use readers::{Reader, Readers};
pub use row::{Decode, FromRow, Index, Row};

use super::Dialect;

/// A connection pool of either database.
#[derive(Debug, Clone)]
pub enum Pool {
    /// SQLite.
    Sqlite(SqlitePool),
    /// SQLite's read connections, whose statements run on the caller's thread.
    SqliteReaders(Readers),
    /// PostgreSQL.
    Postgres(PgPool),
}

impl Pool {
    /// A connection of its own for a while.
    pub async fn acquire(&self) -> Result<Conn<'static>, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(pool) => Conn::Sqlite(Native::Pooled(pool.acquire().await?)),
            Self::SqliteReaders(readers) => Conn::SqliteReader(readers.get().await?),
            Self::Postgres(pool) => Conn::Postgres(Native::Pooled(pool.acquire().await?)),
        })
    }

    /// Begins a transaction with `statement` (`BEGIN IMMEDIATE` on SQLite). The read
    /// connections take none: they only read, one statement at a time.
    pub async fn begin_with(&self, statement: &'static str) -> Result<Tx<'static>, sqlx::Error> {
        Ok(Tx(match self {
            Self::Sqlite(pool) => Conn::Sqlite(Native::Tx(pool.begin_with(statement).await?)),
            Self::SqliteReaders(_) => {
                return Err(sqlx::Error::Protocol(
                    "a transaction was begun on SQLite's read connections".into(),
                ))
            }
            Self::Postgres(pool) => Conn::Postgres(Native::Tx(pool.begin_with(statement).await?)),
        }))
    }

    /// Closes the pool, waiting for connections to be returned (SQLite's read connections
    /// close as they come back).
    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::SqliteReaders(readers) => readers.close(),
            Self::Postgres(pool) => pool.close().await,
        }
    }

    /// Which database.
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) | Self::SqliteReaders(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }
}

/// A connection of one database: from a pool, or inside a transaction or savepoint.
#[derive(Debug)]
pub enum Native<'c, DB: sqlx::Database> {
    /// A pooled connection.
    Pooled(PoolConnection<DB>),
    /// A transaction (or savepoint) on a connection.
    Tx(sqlx::Transaction<'c, DB>),
    /// Another's connection, lent for a while (see [`Conn::lock`]).
    Borrowed(&'c mut DB::Connection),
}

impl<DB: sqlx::Database> Deref for Native<'_, DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &Self::Target {
        match self {
            Self::Pooled(connection) => connection,
            Self::Tx(transaction) => transaction,
            Self::Borrowed(connection) => connection,
        }
    }
}

impl<DB: sqlx::Database> DerefMut for Native<'_, DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            Self::Pooled(connection) => connection,
            Self::Tx(transaction) => transaction,
            Self::Borrowed(connection) => connection,
        }
    }
}

/// A connection of either database. Functions that run statements take `&mut Conn<'_>`; a
/// [`Tx`] dereferences to one.
#[derive(Debug)]
pub enum Conn<'c> {
    /// SQLite.
    Sqlite(Native<'c, Sqlite>),
    /// PostgreSQL.
    Postgres(Native<'c, Postgres>),
    /// SQLite on the caller's thread (see [`Conn::lock`]).
    SqliteInline(InlineConn<'c>),
    /// One of SQLite's read connections, on the caller's thread too (see [`Readers`]).
    SqliteReader(Reader),
}

impl Conn<'_> {
    /// Begins a transaction on this connection: a savepoint when one is open already.
    pub async fn begin(&mut self) -> Result<Tx<'_>, sqlx::Error> {
        Ok(Tx(match self {
            Self::Sqlite(native) => Conn::Sqlite(Native::Tx((**native).begin().await?)),
            Self::Postgres(native) => Conn::Postgres(Native::Tx((**native).begin().await?)),
            Self::SqliteInline(inline) => Conn::SqliteInline(inline.savepoint()?),
            Self::SqliteReader(reader) => {
                Conn::SqliteInline(InlineConn::open_savepoint(reader, 1)?)
            }
        }))
    }

    /// This connection for a run of statements. On SQLite, the statements then run on the
    /// caller's thread instead of one round trip each to sqlx's worker thread (see
    /// [`Inline`]); hold the returned [`Lock`] only while statements run, never across a wait
    /// for something else than this connection. On PostgreSQL it is the connection itself.
    pub async fn lock(&mut self) -> Result<Lock<'_>, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(native) => Lock::Sqlite(Inline::lock(native).await?),
            Self::Postgres(native) => Lock::Postgres(native),
            Self::SqliteInline(inline) => Lock::Nested(inline.reborrow()),
            Self::SqliteReader(reader) => Lock::Nested(InlineConn::new(reader)),
        })
    }

    /// Which database.
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) | Self::SqliteInline(_) | Self::SqliteReader(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs `sql` (one or more statements, no parameters) on this connection.
    pub async fn execute_batch(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        use sqlx::Executor as _;
        match self {
            Self::Sqlite(native) => (**native).execute(sql).await.map(|_| ()),
            Self::Postgres(native) => (**native).execute(sql).await.map(|_| ()),
            Self::SqliteInline(inline) => inline::run_batch(inline.connection, sql),
            Self::SqliteReader(reader) => inline::run_batch(reader, sql),
        }
    }
}

/// A connection taken for a run of statements (see [`Conn::lock`]); [`Lock::conn`] runs them.
#[derive(Debug)]
pub enum Lock<'c> {
    /// A SQLite handle taken from its worker thread.
    Sqlite(Inline<'c>),
    /// A PostgreSQL connection.
    Postgres(&'c mut PgConnection),
    /// A SQLite connection that was inline already.
    Nested(InlineConn<'c>),
}

impl Lock<'_> {
    /// The connection to run statements on.
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Self::Sqlite(inline) => Conn::SqliteInline(InlineConn {
                connection: inline.connection(),
                savepoint: None,
                depth: 0,
            }),
            Self::Postgres(connection) => Conn::Postgres(Native::Borrowed(&mut **connection)),
            Self::Nested(inline) => Conn::SqliteInline(inline.reborrow()),
        }
    }
}

/// A SQLite connection running statements inline, possibly inside a savepoint of its own.
pub struct InlineConn<'c> {
    connection: &'c mut rusqlite::Connection,
    /// The savepoint this holds open, rolled back if it is dropped without a commit.
    savepoint: Option<u32>,
    /// How many savepoints enclose this one.
    depth: u32,
}

impl std::fmt::Debug for InlineConn<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("InlineConn")
            .field("savepoint", &self.savepoint)
            .finish()
    }
}

impl<'c> InlineConn<'c> {
    /// A connection outside any savepoint of its own.
    fn new(connection: &'c mut rusqlite::Connection) -> Self {
        Self {
            connection,
            savepoint: None,
            depth: 0,
        }
    }

    /// Opens savepoint number `depth` on `connection`.
    fn open_savepoint(
        connection: &'c mut rusqlite::Connection,
        depth: u32,
    ) -> Result<Self, sqlx::Error> {
        inline::run_batch(connection, &format!("SAVEPOINT crm_router_inline_{depth}"))?;
        Ok(Self {
            connection,
            savepoint: Some(depth),
            depth,
        })
    }
}

impl InlineConn<'_> {
    fn reborrow(&mut self) -> InlineConn<'_> {
        InlineConn {
            connection: &mut *self.connection,
            savepoint: None,
            depth: self.depth,
        }
    }

    fn savepoint(&mut self) -> Result<InlineConn<'_>, sqlx::Error> {
        InlineConn::open_savepoint(&mut *self.connection, self.depth + 1)
    }

    fn release(mut self) -> Result<(), sqlx::Error> {
        match self.savepoint.take() {
            Some(depth) => inline::run_batch(
                self.connection,
                &format!("RELEASE SAVEPOINT crm_router_inline_{depth}"),
            ),
            None => Err(not_a_transaction()),
        }
    }

    fn roll_back(mut self) -> Result<(), sqlx::Error> {
        match self.savepoint.take() {
            Some(depth) => roll_back_savepoint(self.connection, depth),
            None => Err(not_a_transaction()),
        }
    }
}

fn roll_back_savepoint(connection: &rusqlite::Connection, depth: u32) -> Result<(), sqlx::Error> {
    inline::run_batch(
        connection,
        &format!(
            "ROLLBACK TO SAVEPOINT crm_router_inline_{depth}; \
             RELEASE SAVEPOINT crm_router_inline_{depth}"
        ),
    )
}

impl Drop for InlineConn<'_> {
    fn drop(&mut self) {
        if let Some(depth) = self.savepoint.take() {
            // As sqlx's transactions do: a savepoint dropped without a commit is undone. A
            // failure here leaves it to the enclosing transaction's rollback.
            if let Err(error) = roll_back_savepoint(self.connection, depth) {
                tracing::warn!(%error, "rolling back an abandoned savepoint failed");
            }
        }
    }
}

/// A transaction (or savepoint); dropped without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub struct Tx<'c>(Conn<'c>);

impl Tx<'_> {
    /// Commits (releases the savepoint).
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self.0 {
            Conn::Sqlite(Native::Tx(transaction)) => transaction.commit().await,
            Conn::Postgres(Native::Tx(transaction)) => transaction.commit().await,
            Conn::SqliteInline(inline) => inline.release(),
            _ => Err(not_a_transaction()),
        }
    }

    /// Rolls back (to the savepoint).
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self.0 {
            Conn::Sqlite(Native::Tx(transaction)) => transaction.rollback().await,
            Conn::Postgres(Native::Tx(transaction)) => transaction.rollback().await,
            Conn::SqliteInline(inline) => inline.roll_back(),
            _ => Err(not_a_transaction()),
        }
    }
}

/// A `Tx` is only ever built around a transaction; were it not, a commit must not pass for one.
fn not_a_transaction() -> sqlx::Error {
    sqlx::Error::Protocol("a crm-router Tx without a transaction".into())
}

impl<'c> Deref for Tx<'c> {
    type Target = Conn<'c>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Where a statement runs: a connection or a pool of either database.
pub enum Target<'e> {
    /// A SQLite connection.
    SqliteConnection(&'e mut SqliteConnection),
    /// A SQLite pool.
    SqlitePool(&'e SqlitePool),
    /// A PostgreSQL connection.
    PgConnection(&'e mut PgConnection),
    /// A PostgreSQL pool.
    PgPool(&'e PgPool),
    /// A SQLite connection running statements inline.
    SqliteInline(&'e mut rusqlite::Connection),
    /// SQLite's read connections (each statement inline on one of them).
    SqliteReaders(&'e Readers),
}

/// What a [`Query`] can run on: `&mut Conn`, `&mut Tx` or `&Pool`.
pub trait Executor<'e> {
    /// The native target.
    fn target(self) -> Target<'e>;
}

impl<'e> Executor<'e> for &'e mut Conn<'_> {
    fn target(self) -> Target<'e> {
        match self {
            Conn::Sqlite(native) => Target::SqliteConnection(native),
            Conn::Postgres(native) => Target::PgConnection(native),
            Conn::SqliteInline(inline) => Target::SqliteInline(&mut *inline.connection),
            Conn::SqliteReader(reader) => Target::SqliteInline(reader),
        }
    }
}

impl<'e> Executor<'e> for &'e mut Tx<'_> {
    fn target(self) -> Target<'e> {
        (&mut self.0).target()
    }
}

impl<'e> Executor<'e> for &'e Pool {
    fn target(self) -> Target<'e> {
        match self {
            Pool::Sqlite(pool) => Target::SqlitePool(pool),
            Pool::SqliteReaders(readers) => Target::SqliteReaders(readers),
            Pool::Postgres(pool) => Target::PgPool(pool),
        }
    }
}
