//! The native connection of each database behind one small interface: [`Pool`], [`Conn`]
//! and [`Tx`] are SQLite or PostgreSQL, [`Query`] binds its [`Param`]s the way that database
//! wants them, and [`Row`] decodes either's values.
//!
//! This is the only place that matches on the backend to run a statement; everything above it
//! writes `db::query(sql).bind(..).fetch_all(&mut *connection)` once for both.

mod param;
mod query;
mod row;

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection as _, PgPool, Postgres, Sqlite, SqlitePool};

pub use param::{IntoParam, Kind, Param};
pub use query::{query, query_owned, Done, Query};
pub use row::{Decode, FromRow, Index, Row};

use super::Dialect;

/// A connection pool of either database.
#[derive(Debug, Clone)]
pub enum Pool {
    /// SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

impl Pool {
    /// A connection of its own for a while.
    pub async fn acquire(&self) -> Result<Conn<'static>, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(pool) => Conn::Sqlite(Native::Pooled(pool.acquire().await?)),
            Self::Postgres(pool) => Conn::Postgres(Native::Pooled(pool.acquire().await?)),
        })
    }

    /// Begins a transaction with `statement` (`BEGIN IMMEDIATE` on SQLite).
    pub async fn begin_with(&self, statement: &'static str) -> Result<Tx<'static>, sqlx::Error> {
        Ok(Tx(match self {
            Self::Sqlite(pool) => Conn::Sqlite(Native::Tx(pool.begin_with(statement).await?)),
            Self::Postgres(pool) => Conn::Postgres(Native::Tx(pool.begin_with(statement).await?)),
        }))
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }

    /// Which database.
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
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
}

impl<DB: sqlx::Database> Deref for Native<'_, DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &Self::Target {
        match self {
            Self::Pooled(connection) => connection,
            Self::Tx(transaction) => transaction,
        }
    }
}

impl<DB: sqlx::Database> DerefMut for Native<'_, DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            Self::Pooled(connection) => connection,
            Self::Tx(transaction) => transaction,
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
}

impl Conn<'_> {
    /// Begins a transaction on this connection: a savepoint when one is open already.
    pub async fn begin(&mut self) -> Result<Tx<'_>, sqlx::Error> {
        Ok(Tx(match self {
            Self::Sqlite(native) => Conn::Sqlite(Native::Tx((**native).begin().await?)),
            Self::Postgres(native) => Conn::Postgres(Native::Tx((**native).begin().await?)),
        }))
    }

    /// Which database.
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs `sql` (one or more statements, no parameters) on this connection.
    pub async fn execute_batch(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        use sqlx::Executor as _;
        match self {
            Self::Sqlite(native) => (**native).execute(sql).await.map(|_| ()),
            Self::Postgres(native) => (**native).execute(sql).await.map(|_| ()),
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
            Conn::Sqlite(Native::Pooled(_)) | Conn::Postgres(Native::Pooled(_)) => {
                Err(not_a_transaction())
            }
        }
    }

    /// Rolls back (to the savepoint).
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self.0 {
            Conn::Sqlite(Native::Tx(transaction)) => transaction.rollback().await,
            Conn::Postgres(Native::Tx(transaction)) => transaction.rollback().await,
            Conn::Sqlite(Native::Pooled(_)) | Conn::Postgres(Native::Pooled(_)) => {
                Err(not_a_transaction())
            }
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
            Pool::Postgres(pool) => Target::PgPool(pool),
        }
    }
}
