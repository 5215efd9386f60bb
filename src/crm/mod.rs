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
pub mod audit;
pub mod customers;
pub mod meetings;
pub mod notifications;
pub mod opportunities;
pub mod publish;
pub mod reference;
pub mod reports;
pub mod scope;
pub mod tasks;
pub mod users;
pub mod validate;

use std::marker::PhantomData;

use crate::store::db::{self, Conn, FromRow, Pool};

use crate::store::sql::StatementBuilder;
use thiserror::Error;

pub use publish::Published;
pub use scope::Viewer;
pub use validate::{FieldProblem, Problems};

pub(crate) use crate::store::db::page::{field, flag, float, json, JsonField};

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
    /// Password hashing is at its bound; the caller should come back shortly.
    #[error(transparent)]
    Busy(#[from] crate::auth::hashing::HashingError),
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

/// A page of records as the JSON array the API answers, rendered by the database, and how
/// many records match in all.
#[derive(Debug, Clone)]
pub struct JsonPage<T> {
    /// The page: a JSON array of records shaped like `T`'s serialisation.
    pub json: String,
    /// Rows matching the filters across all pages.
    pub total: i64,
    record: PhantomData<fn() -> T>,
}

impl<T: serde::Serialize> JsonPage<T> {
    /// A page of records serialised here (for lists the database does not render).
    pub fn serialized(items: &[T], total: i64) -> Result<Self, serde_json::Error> {
        Ok(Self {
            json: serde_json::to_string(items)?,
            total,
            record: PhantomData,
        })
    }
}

/// A list as the API answers it: one page of the rows `build` selects, in `order`, as one
/// JSON array of `fields` (see [`db::page`]), and how many rows it selects in all.
/// `build(select)` returns `SELECT <select> FROM … WHERE …` with its filters; `columns` must
/// be the fields' columns in their order.
pub(crate) async fn fetch_json_page<T>(
    pool: &Pool,
    build: impl Fn(&str) -> StatementBuilder,
    columns: &str,
    fields: &[JsonField],
    order: &'static str,
    paging: Paging,
) -> Result<JsonPage<T>, CrmError> {
    let count = build("COUNT(*)").finish();
    let mut page = build(columns);
    page.push(&format!(" ORDER BY {order} LIMIT "));
    page.push_typed(db::Param::Int(paging.limit));
    page.push(" OFFSET ");
    page.push_typed(db::Param::Int(paging.offset));
    let page = page.finish();
    // `build` pushes the same filter values in the same order whatever it selects, so the
    // count's `$n` name the page's own first parameters.
    if page.params.get(..count.params.len()) != Some(count.params.as_slice()) {
        return Err(CrmError::Internal(
            "a list's filters depend on its select list".into(),
        ));
    }
    let (total, json) = db::page::fetch(
        pool,
        db::page::PageQuery {
            count: &count.sql,
            count_params: &count.params,
            page: &page.sql,
            page_params: &page.params,
            cacheable: count.cacheable && page.cacheable,
            fields,
            order,
        },
    )
    .await?;
    Ok(JsonPage {
        json,
        total,
        record: PhantomData,
    })
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

    /// Checks the query parameters. A `limit` above [`Self::MAX_LIMIT`] is served as the
    /// largest page rather than refused: the original frontend asks for 1,000 rows to fill its
    /// select boxes, and the answer's `pagination.limit` says what it got.
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Result<Self, CrmError> {
        let mut problems = Problems::default();
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT);
        if limit < 1 {
            problems.add("limit", "must be at least 1");
        }
        let offset = offset.unwrap_or(0);
        if offset < 0 {
            problems.add("offset", "must not be negative");
        }
        problems.into_result()?;
        Ok(Self {
            limit: limit.min(Self::MAX_LIMIT),
            offset,
        })
    }

    /// Paging by 1-based page number, as the original API asks for it.
    pub fn by_page(limit: Option<i64>, page: i64) -> Result<Self, CrmError> {
        let refused = |message: &str| {
            let mut problems = Problems::default();
            problems.add("page", message);
            CrmError::Invalid(problems)
        };
        if page < 1 {
            return Err(refused("must be at least 1"));
        }
        let first = Self::new(limit, None)?;
        let offset = (page - 1)
            .checked_mul(first.limit)
            .ok_or_else(|| refused("is too large"))?;
        Ok(Self { offset, ..first })
    }
}

/// A CRM record type as it is read: its table and the `SELECT` list of its columns and the
/// records it nests.
pub(crate) trait Record: FromRow {
    /// Its table.
    const TABLE: &'static str;
    /// What a missing one is called in a 404.
    const WHAT: &'static str;
    /// Its `SELECT` list on `dialect`.
    fn selected(dialect: crate::store::Dialect) -> String;
}

/// A record just written, read back by id so the answer carries the records it nests. Not
/// restricted to the viewer: they were allowed the write, and a change (of customer, say) may
/// take the record out of their sight without undoing what they did.
pub(crate) async fn read_back<T: Record>(
    connection: &mut Conn<'_>,
    id: &str,
) -> Result<T, CrmError> {
    let mut statement = StatementBuilder::new(format!(
        "SELECT {} FROM {} WHERE id = ",
        T::selected(connection.dialect()),
        T::TABLE
    ));
    statement.push_param(id.to_string());
    fetch_visible(connection, statement, T::WHAT).await
}

/// The one row `statement` selects, or [`CrmError::NotFound`] naming `what`.
pub(crate) async fn fetch_visible<T: FromRow>(
    connection: &mut Conn<'_>,
    statement: StatementBuilder,
    what: &'static str,
) -> Result<T, CrmError> {
    statement
        .finish()
        .into_query()
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

#[cfg(test)]
mod tests {
    //! The lists the database renders must read exactly like the records' own serialisation.

    use serde_json::Value;

    use super::*;
    use crate::store::sql::StatementBuilder;
    use crate::test_project::load_project;

    /// The rows of `table`, rendered by the database and by `T`'s `Serialize`, read from the
    /// record's `columns` as the API reads them.
    async fn both_renderings<T: FromRow + serde::Serialize>(
        pool: &Pool,
        table: &str,
        columns: &str,
        fields: &[JsonField],
    ) -> (Value, Value) {
        let build = |select: &str| StatementBuilder::new(format!("SELECT {select} FROM {table}"));
        let paging = Paging::new(Some(500), None).unwrap();
        let page: JsonPage<T> = fetch_json_page(pool, build, columns, fields, "id", paging)
            .await
            .unwrap();
        let typed: Vec<T> = db::query(&format!("SELECT {columns} FROM {table} ORDER BY id"))
            .fetch_all_as(pool)
            .await
            .unwrap();
        assert_eq!(page.total, typed.len() as i64);
        (
            numbers_as_doubles(serde_json::from_str(&page.json).unwrap()),
            numbers_as_doubles(serde_json::to_value(&typed).unwrap()),
        )
    }

    /// JSON numbers compared by value: `1500000` and `1500000.0` are the same double.
    fn numbers_as_doubles(value: Value) -> Value {
        match value {
            Value::Number(number) => number
                .as_f64()
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(numbers_as_doubles).collect())
            }
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .map(|(key, value)| (key, numbers_as_doubles(value)))
                    .collect(),
            ),
            other => other,
        }
    }

    #[tokio::test]
    async fn database_rendered_lists_match_the_records_serialisation() {
        let project = load_project(&[]).await;
        let mut transaction = project.store.begin().await.unwrap();
        transaction
            .execute_batch(
                "INSERT INTO customers (id, name, email, owner_id, created_at, updated_at) VALUES \
                 ('c1', 'Ünïcode \"quoted\"\n名前', NULL, 'u1', '2026-01-01T00:00:00.000Z', 'x'), \
                 ('c2', 'Plain', 'p@example.com', NULL, 'b', 'y'); \
                 INSERT INTO users (id, email, password_hash, name, role, created_at, updated_at) \
                 VALUES ('u1', 'u1@example.com', 'x', 'Nested \"user\" 名前', 'SALES', 'a', 'b'); \
                 INSERT INTO tasks (id, title, due_date, created_at, updated_at) VALUES \
                 ('t1', 'Call', '2026-02-01', 'a', 'b'); \
                 INSERT INTO tasks (id, title, customer_id, assignee_id, created_at, updated_at) \
                 VALUES ('t2', 'Nested', 'c1', 'u1', 'a', 'b'); \
                 INSERT INTO opportunities (id, name, amount, activity_count, created_at, updated_at) VALUES \
                 ('o1', 'Deal', 1500000.0, 3, 'a', 'b'), ('o2', 'Small', 0.1, 0, 'a', 'b'), \
                 ('o3', 'Sum', 0.1 + 0.2, 0, 'a', 'b'), ('o4', 'Long', 123456789.123456789, 0, 'a', 'b'), \
                 ('o5', 'Huge', 1e308 * 10, 0, 'a', 'b'); \
                 INSERT INTO approvals (id, requester_id, title, amount, requested_at) VALUES \
                 ('a1', 'u1', 'Discount', 12.5, 'a'), ('a2', 'u1', 'No amount', NULL, 'b'); \
                 UPDATE approvals SET customer_id = 'c2', approver_id = 'u1' WHERE id = 'a1'; \
                 INSERT INTO notifications (id, user_id, type, title, message, read, created_at) VALUES \
                 ('n1', 'u1', 'TASK', 't', 'm', 0, 'a'), ('n2', 'u1', 'TASK', 't', 'm', 1, 'b'); \
                 INSERT INTO audit_log (id, user_id, action, resource_type, resource_id, changes, \
                 ip_address, recorded_at) VALUES ('e1', 'u1', 'UPDATE', 'Customer', 'c1', \
                 '{\"before\":{\"name\":\"A \\\"q\\\"\"},\"after\":{\"n\":1.5}}', '127.0.0.1', 'a'), \
                 ('e2', 'gone', 'LOGIN', 'User', 'gone', NULL, NULL, 'b');",
            )
            .await
            .unwrap();
        transaction.commit().await.unwrap();
        let pool = project.store.reader();
        let (rendered, serialised) = both_renderings::<customers::Customer>(
            pool,
            "customers",
            &customers::selected(pool.dialect()),
            customers::FIELDS,
        )
        .await;
        assert_eq!(rendered, serialised);
        let (rendered, serialised) = both_renderings::<tasks::Task>(
            pool,
            "tasks",
            &tasks::selected(pool.dialect()),
            tasks::FIELDS,
        )
        .await;
        assert_eq!(rendered, serialised);
        // The nested records are there, not just equally absent in both renderings.
        assert_eq!(
            rendered[1]["user"]["name"], "Nested \"user\" 名前",
            "{rendered}"
        );
        assert_eq!(rendered[1]["customer"]["id"], "c1", "{rendered}");
        assert_eq!(rendered[0]["customer"], Value::Null);
        let (rendered, serialised) = both_renderings::<opportunities::Opportunity>(
            pool,
            "opportunities",
            opportunities::COLUMNS,
            opportunities::FIELDS,
        )
        .await;
        assert_eq!(rendered, serialised);
        let (rendered, serialised) = both_renderings::<approvals::Approval>(
            pool,
            "approvals",
            &approvals::selected(pool.dialect()),
            approvals::FIELDS,
        )
        .await;
        assert_eq!(rendered, serialised);
        let (rendered, serialised) = both_renderings::<notifications::Notification>(
            pool,
            "notifications",
            notifications::COLUMNS,
            notifications::FIELDS,
        )
        .await;
        assert_eq!(rendered, serialised);
        let (rendered, serialised) = both_renderings::<audit::AuditEntry>(
            pool,
            "audit_log",
            &audit::selected(pool.dialect()),
            audit::FIELDS,
        )
        .await;
        assert_eq!(rendered, serialised);
        assert_eq!(
            rendered[0]["changes"]["before"]["name"], "A \"q\"",
            "{rendered}"
        );
        assert_eq!(rendered[0]["user"]["role"], "SALES", "{rendered}");
        assert_eq!(rendered[1]["user"], Value::Null);
    }
}
