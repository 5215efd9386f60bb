//! The bundled CRM's own data: users, customers, tasks, opportunities, approvals,
//! notifications and analytics, with the rules of who may see and change what.
//!
//! Every write stores its row and the domain event announcing it in the caller's transaction
//! (the event log is the outbox), so a row never exists without its event or the other way
//! round. The reactions to those events (a customer for a new user, the first-contact task...)
//! are not here: they are the route files in `routes/`.
//!
//! Nothing here knows HTTP; `api::crm` maps requests to these functions and [`CrmError`] to
//! status codes.

pub mod analytics;
pub mod approvals;
pub mod customers;
pub mod notifications;
pub mod opportunities;
pub mod publish;
pub mod scope;
pub mod tasks;
pub mod users;
pub mod validate;

use crate::store::db::{self, Conn, FromRow, Pool};

use crate::store::sql::StatementBuilder;
use thiserror::Error;

pub use publish::Published;
pub use scope::Viewer;
pub use validate::{FieldProblem, Problems};

/// Why a CRM operation was refused or failed.
#[derive(Debug, Error)]
pub enum CrmError {
    /// Input failed validation; one entry per field.
    #[error("invalid request: {}", .0.summary())]
    Invalid(Problems),
    /// No such record, or one the caller may not see (indistinguishable on purpose).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller may see the record but not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the current state (taken email, decided approval).
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Something that is not the caller's fault (details for the log only).
    #[error("{0}")]
    Internal(String),
}

impl CrmError {
    /// For a record a request names by id (`customerId`): "not found" becomes a 400 on that
    /// field, since the request, not the URL, is wrong. Other errors pass through.
    pub fn as_reference(self, field: &str, message: &str) -> Self {
        match self {
            Self::NotFound(_) => {
                let mut problems = Problems::default();
                problems.add(field, message);
                Self::Invalid(problems)
            }
            other => other,
        }
    }
}

impl From<crate::store::StoreError> for CrmError {
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            crate::store::StoreError::Query(error) => Self::Database(error),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// A page of a list: the rows and how many match in all.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Rows matching the filters across all pages.
    pub total: i64,
}

/// `limit`/`offset` of a list request, already bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// Rows per page, 1–500.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

impl Paging {
    /// Default page size.
    pub const DEFAULT_LIMIT: i64 = 50;
    /// Largest page size.
    pub const MAX_LIMIT: i64 = 500;

    /// Checks the query parameters.
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Result<Self, CrmError> {
        let mut problems = Problems::default();
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT);
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            problems.add(
                "limit",
                format!("must be between 1 and {}", Self::MAX_LIMIT),
            );
        }
        let offset = offset.unwrap_or(0);
        if offset < 0 {
            problems.add("offset", "must not be negative");
        }
        problems.into_result()?;
        Ok(Self { limit, offset })
    }
}

/// A list: one page of the rows `build` selects, in `order`, and how many it selects in all.
/// `build(select)` returns the statement `SELECT <select> FROM … WHERE …` with its filters.
///
/// One statement answers both: the count is an uncorrelated subquery in the select list, which
/// both databases evaluate once (through the index, like a separate `COUNT(*)`; a window
/// `COUNT(*) OVER ()` would read every matching row). Only a page past the end, which has no
/// row to carry the count, costs a second statement.
pub(crate) async fn fetch_page<T: FromRow>(
    pool: &Pool,
    build: impl Fn(&str) -> StatementBuilder,
    columns: &str,
    order: &'static str,
    paging: Paging,
) -> Result<Page<T>, CrmError> {
    let count = build("COUNT(*)").finish();
    // `build` pushes the same filter values in the same order whatever it selects, so the
    // subquery's `$n` name the page statement's own first parameters.
    let mut statement = build(&format!("{columns}, ({}) AS total_rows", count.sql));
    if statement.params() != count.params.as_slice() {
        return Err(CrmError::Internal(
            "a list's filters depend on its select list".into(),
        ));
    }
    statement.push(&format!(" ORDER BY {order} LIMIT "));
    statement.push_typed(db::Param::Int(paging.limit));
    statement.push(" OFFSET ");
    statement.push_typed(db::Param::Int(paging.offset));
    let statement = statement.finish();
    let rows = statement.query().fetch_all(pool).await?;
    let total = match rows.first() {
        Some(row) => row.try_get("total_rows")?,
        None if paging.offset == 0 => 0,
        None => count.query().fetch_one(pool).await?.try_get(0)?,
    };
    let items = rows.iter().map(T::from_row).collect::<Result<_, _>>()?;
    Ok(Page { items, total })
}

/// The one row `statement` selects, or [`CrmError::NotFound`] naming `what`.
pub(crate) async fn fetch_visible<T: FromRow>(
    connection: &mut Conn<'_>,
    statement: StatementBuilder,
    what: &'static str,
) -> Result<T, CrmError> {
    statement
        .finish()
        .query()
        .fetch_optional_as(&mut *connection)
        .await?
        .ok_or(CrmError::NotFound(what))
}

/// Whether a database error is a unique-constraint violation (SQLite 2067/1555, PostgreSQL 23505).
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => matches!(
            database.code().as_deref(),
            Some("2067") | Some("1555") | Some("23505")
        ),
        _ => false,
    }
}
