//! A statement with its parameters, run on the native driver of the target's database.

use std::borrow::Cow;

use sqlx::postgres::PgArguments;
use sqlx::sqlite::SqliteArguments;

use super::{Executor, FromRow, IntoParam, Param, Row, Target};

/// A statement (SQL with `$1`, `$2`, … placeholders) and its parameters.
#[derive(Debug, Clone)]
pub struct Query<'q> {
    sql: Cow<'q, str>,
    params: Vec<Param<'q>>,
    persistent: bool,
}

/// A statement with no parameters yet; prepared statements are cached (see
/// [`Query::persistent`]).
pub fn query(sql: &str) -> Query<'_> {
    Query {
        sql: Cow::Borrowed(sql),
        params: Vec::new(),
        persistent: true,
    }
}

/// [`query`] owning its text.
pub fn query_owned(sql: String) -> Query<'static> {
    Query {
        sql: Cow::Owned(sql),
        params: Vec::new(),
        persistent: true,
    }
}

/// What a statement changed.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub(super) rows_affected: u64,
}

impl Done {
    /// Rows inserted, updated or deleted.
    pub fn rows_affected(&self) -> u64 {
        self.rows_affected
    }
}

fn encode_error(error: sqlx::error::BoxDynError) -> sqlx::Error {
    sqlx::Error::Encode(error)
}

impl<'q> Query<'q> {
    /// Binds the next parameter.
    pub fn bind(mut self, value: impl IntoParam<'q>) -> Self {
        self.params.push(value.into_param());
        self
    }

    /// Binds parameters in order.
    pub fn bind_all(mut self, params: impl IntoIterator<Item = Param<'q>>) -> Self {
        self.params.extend(params);
        self
    }

    /// Whether the prepared statement stays cached on the connection (default: yes).
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    fn sqlite_arguments(&self) -> Result<SqliteArguments<'_>, sqlx::Error> {
        let mut arguments = SqliteArguments::default();
        for param in &self.params {
            param.add_to_sqlite(&mut arguments).map_err(encode_error)?;
        }
        Ok(arguments)
    }

    fn postgres_arguments(&self) -> Result<PgArguments, sqlx::Error> {
        let mut arguments = PgArguments::default();
        for param in &self.params {
            param
                .add_to_postgres(&mut arguments)
                .map_err(encode_error)?;
        }
        Ok(arguments)
    }

    /// Runs the statement.
    pub async fn execute<'e>(self, executor: impl Executor<'e>) -> Result<Done, sqlx::Error> {
        let result = match executor.target() {
            Target::SqliteConnection(connection) => {
                self.sqlite()?.execute(connection).await?.rows_affected()
            }
            Target::SqlitePool(pool) => self.sqlite()?.execute(pool).await?.rows_affected(),
            Target::PgConnection(connection) => {
                self.postgres()?.execute(connection).await?.rows_affected()
            }
            Target::PgPool(pool) => self.postgres()?.execute(pool).await?.rows_affected(),
            Target::SqliteInline(connection) => self.inline(connection, Some(0))?.0.rows_affected,
            Target::SqliteReaders(readers) => {
                self.inline(&*readers.get().await?, Some(0))?
                    .0
                    .rows_affected
            }
        };
        Ok(Done {
            rows_affected: result,
        })
    }

    /// All rows.
    pub async fn fetch_all<'e>(self, executor: impl Executor<'e>) -> Result<Vec<Row>, sqlx::Error> {
        Ok(match executor.target() {
            Target::SqliteConnection(connection) => {
                sqlite_rows(self.sqlite()?.fetch_all(connection).await?)
            }
            Target::SqlitePool(pool) => sqlite_rows(self.sqlite()?.fetch_all(pool).await?),
            Target::PgConnection(connection) => {
                postgres_rows(self.postgres()?.fetch_all(connection).await?)
            }
            Target::PgPool(pool) => postgres_rows(self.postgres()?.fetch_all(pool).await?),
            Target::SqliteInline(connection) => self.inline(connection, None)?.1,
            Target::SqliteReaders(readers) => self.inline(&*readers.get().await?, None)?.1,
        })
    }

    /// The first row, if any.
    pub async fn fetch_optional<'e>(
        self,
        executor: impl Executor<'e>,
    ) -> Result<Option<Row>, sqlx::Error> {
        Ok(match executor.target() {
            Target::SqliteConnection(connection) => self
                .sqlite()?
                .fetch_optional(connection)
                .await?
                .map(Row::Sqlite),
            Target::SqlitePool(pool) => self.sqlite()?.fetch_optional(pool).await?.map(Row::Sqlite),
            Target::PgConnection(connection) => self
                .postgres()?
                .fetch_optional(connection)
                .await?
                .map(Row::Postgres),
            Target::PgPool(pool) => self
                .postgres()?
                .fetch_optional(pool)
                .await?
                .map(Row::Postgres),
            Target::SqliteInline(connection) => self.inline(connection, Some(1))?.1.pop(),
            Target::SqliteReaders(readers) => self.inline(&*readers.get().await?, Some(1))?.1.pop(),
        })
    }

    /// The first row; none is [`sqlx::Error::RowNotFound`].
    pub async fn fetch_one<'e>(self, executor: impl Executor<'e>) -> Result<Row, sqlx::Error> {
        self.fetch_optional(executor)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// The first row as `T`, if any.
    pub async fn fetch_optional_as<'e, T: FromRow>(
        self,
        executor: impl Executor<'e>,
    ) -> Result<Option<T>, sqlx::Error> {
        self.fetch_optional(executor)
            .await?
            .map(|row| T::from_row(&row))
            .transpose()
    }

    /// The first row as `T`; none is [`sqlx::Error::RowNotFound`].
    pub async fn fetch_one_as<'e, T: FromRow>(
        self,
        executor: impl Executor<'e>,
    ) -> Result<T, sqlx::Error> {
        T::from_row(&self.fetch_one(executor).await?)
    }

    /// Every row as `T`.
    pub async fn fetch_all_as<'e, T: FromRow>(
        self,
        executor: impl Executor<'e>,
    ) -> Result<Vec<T>, sqlx::Error> {
        self.fetch_all(executor)
            .await?
            .iter()
            .map(T::from_row)
            .collect()
    }

    fn inline(
        &self,
        connection: &rusqlite::Connection,
        limit: Option<usize>,
    ) -> Result<(Done, Vec<Row>), sqlx::Error> {
        super::inline::run(connection, &self.sql, &self.params, self.persistent, limit)
    }

    fn sqlite(
        &self,
    ) -> Result<sqlx::query::Query<'_, sqlx::Sqlite, SqliteArguments<'_>>, sqlx::Error> {
        Ok(sqlx::query_with(&self.sql, self.sqlite_arguments()?).persistent(self.persistent))
    }

    fn postgres(&self) -> Result<sqlx::query::Query<'_, sqlx::Postgres, PgArguments>, sqlx::Error> {
        Ok(sqlx::query_with(&self.sql, self.postgres_arguments()?).persistent(self.persistent))
    }
}

fn sqlite_rows(rows: Vec<sqlx::sqlite::SqliteRow>) -> Vec<Row> {
    rows.into_iter().map(Row::Sqlite).collect()
}

fn postgres_rows(rows: Vec<sqlx::postgres::PgRow>) -> Vec<Row> {
    rows.into_iter().map(Row::Postgres).collect()
}
