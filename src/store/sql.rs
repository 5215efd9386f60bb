//! SQL text built from checked identifiers, with every value bound as a `$n` parameter, and the
//! conversions between JSON values and database values.

use std::fmt::Write as _;

use serde_json::Value as Json;

use super::catalog::Column;
use super::column_type::{ColumnType, Mismatch};
use super::db::{self, Param};
use crate::route::Ident;

/// A statement and its parameters, in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// SQL text with `$1`, `$2`, ... placeholders.
    pub sql: String,
    /// Parameter values.
    pub params: Vec<Param<'static>>,
    /// Whether the prepared statement may stay cached: not when its text varies with the
    /// values (an `IN` list's length), which would fill the cache with one-off statements.
    pub cacheable: bool,
}

impl Statement {
    /// The statement as a query with all parameters bound.
    pub fn into_query(self) -> db::Query<'static> {
        db::query_owned(self.sql)
            .bind_all(self.params)
            .persistent(self.cacheable)
    }
}

/// Converts a route's value for its column, naming the column when it does not fit.
pub fn typed_param(
    column: &Ident,
    column_type: &ColumnType,
    value: Json,
) -> Result<Param<'static>, ValueRefused> {
    column_type.param(value).map_err(|mismatch| ValueRefused {
        column: column.as_str().to_owned(),
        mismatch,
        at: None,
    })
}

/// A route value that its column's type cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValueRefused {
    /// The column.
    pub column: String,
    /// What was wrong.
    pub mismatch: Mismatch,
    /// Where the route writes the value (`FILE:LINE:COL`), when known.
    pub at: Option<String>,
}

impl ValueRefused {
    /// The refusal, placed at `at` in its route file.
    pub fn at(mut self, at: &str) -> Self {
        self.at = Some(at.to_owned());
        self
    }
}

impl std::fmt::Display for ValueRefused {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "column {}: {}", self.column, self.mismatch)?;
        if let Some(at) = &self.at {
            write!(formatter, " (at {at})")?;
        }
        Ok(())
    }
}

fn column_list(columns: &[&Ident]) -> String {
    columns
        .iter()
        .map(|column| column.quoted())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, $2, $3), ($4, $5, $6), ...` for `rows` rows of `width` parameters.
pub fn placeholder_rows(rows: usize, width: usize) -> String {
    let mut sql = String::with_capacity(rows * width * 5);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..width {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(row * width + column + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

/// What an insert does when it hits a unique constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// Fail (the default).
    Fail,
    /// Keep the existing row.
    Ignore(Vec<Ident>),
    /// Overwrite the existing row's inserted columns.
    Update(Vec<Ident>),
}

/// What a route reads back of a row of a table with `columns`: every column by name, those of a
/// type the daemon cannot decode (PostgreSQL's `interval`, `inet`, …) as text so that reading
/// the row back never fails on them; `*` when the columns are not known.
///
/// Named, not `*`: PostgreSQL fixes a cached statement's result columns when it prepares it, so
/// a `*` would fail every later run ("cached plan must not change result type") once a column
/// is added to the table while the daemon runs.
pub fn row_columns(columns: &[Column]) -> String {
    if columns.is_empty() {
        return "*".to_owned();
    }
    let listed: Option<Vec<String>> = columns
        .iter()
        .map(|column| {
            let name = Ident::parse(&column.name).ok()?.quoted();
            Some(if column.column_type.is_supported() {
                name
            } else {
                format!("CAST({name} AS TEXT) AS {name}")
            })
        })
        .collect();
    listed.map_or_else(|| "*".to_owned(), |names| names.join(", "))
}

/// `INSERT INTO t (cols) VALUES ($1..) [ON CONFLICT ...] [RETURNING <returning>]`.
pub fn insert_sql(
    table: &Ident,
    columns: &[&Ident],
    conflict: &Conflict,
    returning: Option<&str>,
) -> String {
    insert_rows_sql(table, columns, conflict, returning, 1)
}

/// [`insert_sql`] for `rows` rows, their parameters one row after the other.
pub fn insert_rows_sql(
    table: &Ident,
    columns: &[&Ident],
    conflict: &Conflict,
    returning: Option<&str>,
    rows: usize,
) -> String {
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES {}",
        table.quoted(),
        column_list(columns),
        placeholder_rows(rows, columns.len())
    );
    match conflict {
        Conflict::Fail => {}
        Conflict::Ignore(keys) => {
            let keys: Vec<&Ident> = keys.iter().collect();
            let _ = write!(sql, " ON CONFLICT ({}) DO NOTHING", column_list(&keys));
        }
        Conflict::Update(keys) => {
            let key_refs: Vec<&Ident> = keys.iter().collect();
            let updates: Vec<String> = columns
                .iter()
                .filter(|column| !keys.contains(column))
                .map(|column| format!("{0} = excluded.{0}", column.quoted()))
                .collect();
            if updates.is_empty() {
                let _ = write!(sql, " ON CONFLICT ({}) DO NOTHING", column_list(&key_refs));
            } else {
                let _ = write!(
                    sql,
                    " ON CONFLICT ({}) DO UPDATE SET {}",
                    column_list(&key_refs),
                    updates.join(", ")
                );
            }
        }
    }
    push_returning(&mut sql, returning);
    sql
}

/// Upsert: insert keys + set + increments; on key conflict overwrite `set` and add increments.
pub fn upsert_sql(
    table: &Ident,
    keys: &[&Ident],
    set: &[&Ident],
    increment: &[&Ident],
    returning: Option<&str>,
) -> String {
    let all: Vec<&Ident> = keys.iter().chain(set).chain(increment).copied().collect();
    let mut updates: Vec<String> = set
        .iter()
        .map(|column| format!("{0} = excluded.{0}", column.quoted()))
        .collect();
    updates.extend(increment.iter().map(|column| {
        format!(
            "{column} = COALESCE({table}.{column}, 0) + excluded.{column}",
            column = column.quoted(),
            table = table.quoted()
        )
    }));
    let action = if updates.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        format!("DO UPDATE SET {}", updates.join(", "))
    };
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) {}",
        table.quoted(),
        column_list(&all),
        placeholder_rows(1, all.len()),
        column_list(keys),
        action,
    );
    push_returning(&mut sql, returning);
    sql
}

/// Appends `RETURNING <columns>` when the caller keeps the row.
fn push_returning(sql: &mut String, returning: Option<&str>) {
    if let Some(columns) = returning {
        let _ = write!(sql, " RETURNING {columns}");
    }
}

/// A comparison in a `where:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    /// `=`, or `IN` for a list, or `IS NULL` for null.
    Eq,
    /// `<>`, or `NOT IN` for a list, or `IS NOT NULL` for null.
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `IN (list)`
    In,
    /// `NOT IN (list)`
    NotIn,
    /// `IS NULL` when true, `IS NOT NULL` when false.
    IsNull,
}

impl FilterOp {
    /// Parses an operator key of a `where:` operator map.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "in" => Self::In,
            "not_in" => Self::NotIn,
            "is_null" => Self::IsNull,
            _ => return None,
        })
    }

    /// All operator names, for hints.
    pub const NAMES: &'static [&'static str] = &[
        "eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "is_null",
    ];
}

/// Why a `where:` could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The operator cannot take the value.
    #[error("{0}")]
    Invalid(String),
    /// The value does not fit the column's type.
    #[error(transparent)]
    Refused(#[from] ValueRefused),
}

/// Accumulates a statement's text and parameters.
#[derive(Debug, Default)]
pub struct StatementBuilder {
    sql: String,
    params: Vec<Param<'static>>,
    /// An `IN` list makes the text depend on the values.
    varies: bool,
}

impl StatementBuilder {
    /// Starts with `sql`.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            params: Vec::new(),
            varies: false,
        }
    }

    /// Appends literal SQL (never user values).
    pub fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    /// Appends a placeholder bound to `value`.
    pub fn push_param(&mut self, value: impl db::IntoParam<'static>) {
        self.push_typed(value.into_param());
    }

    /// Appends a placeholder bound to `param`.
    pub fn push_typed(&mut self, param: Param<'static>) {
        self.params.push(param);
        let _ = write!(self.sql, "${}", self.params.len());
    }

    /// Appends each `condition` (`" AND status = "`) with its value as a parameter, for the
    /// values that are given: a list's optional filters.
    pub fn push_given<'a>(
        &mut self,
        conditions: impl IntoIterator<Item = (&'a str, Option<&'a String>)>,
    ) {
        for (condition, value) in conditions {
            if let Some(value) = value {
                self.push(condition);
                self.push_param(value.clone());
            }
        }
    }

    /// Appends `column op value`, the value converted for the column's type; a list becomes
    /// `IN (...)`, a null `IS NULL`.
    pub fn push_filter(
        &mut self,
        column: &Ident,
        column_type: &ColumnType,
        op: FilterOp,
        value: Json,
    ) -> Result<(), FilterError> {
        let quoted = column.quoted();
        let (op, value) = match (op, value) {
            (FilterOp::Eq, Json::Array(items)) => (FilterOp::In, Json::Array(items)),
            (FilterOp::Ne, Json::Array(items)) => (FilterOp::NotIn, Json::Array(items)),
            (FilterOp::Eq, Json::Null) => (FilterOp::IsNull, Json::Bool(true)),
            (FilterOp::Ne, Json::Null) => (FilterOp::IsNull, Json::Bool(false)),
            other => other,
        };
        match op {
            FilterOp::In | FilterOp::NotIn => {
                let Json::Array(items) = value else {
                    return Err(FilterError::Invalid(format!(
                        "`{}` on column {column} needs a list",
                        if op == FilterOp::In { "in" } else { "not_in" }
                    )));
                };
                if items.is_empty() {
                    // `IN ()` is not valid SQL; an empty IN matches nothing, an empty NOT IN everything.
                    self.push(if op == FilterOp::In { "1 = 0" } else { "1 = 1" });
                    return Ok(());
                }
                let _ = write!(
                    self.sql,
                    "{quoted} {} (",
                    if op == FilterOp::In { "IN" } else { "NOT IN" }
                );
                self.varies = true;
                for (index, item) in items.into_iter().enumerate() {
                    if index > 0 {
                        self.push(", ");
                    }
                    self.push_typed(typed_param(column, column_type, item)?);
                }
                self.push(")");
            }
            FilterOp::IsNull => {
                let is_null = match value {
                    Json::Bool(flag) => flag,
                    other => {
                        return Err(FilterError::Invalid(format!(
                            "`is_null` on column {column} takes true or false, got {other}"
                        )))
                    }
                };
                let _ = write!(
                    self.sql,
                    "{quoted} IS {}NULL",
                    if is_null { "" } else { "NOT " }
                );
            }
            comparison => {
                if value.is_null() {
                    return Err(FilterError::Invalid(format!(
                        "cannot compare column {column} with null using an ordering operator"
                    )));
                }
                let symbol = match comparison {
                    FilterOp::Eq => "=",
                    FilterOp::Ne => "<>",
                    FilterOp::Lt => "<",
                    FilterOp::Lte => "<=",
                    FilterOp::Gt => ">",
                    _ => ">=",
                };
                let _ = write!(self.sql, "{quoted} {symbol} ");
                self.push_typed(typed_param(column, column_type, value)?);
            }
        }
        Ok(())
    }

    /// Appends ` AND ` (or ` WHERE ` first) and one filter.
    pub fn push_condition(
        &mut self,
        first: bool,
        column: &Ident,
        column_type: &ColumnType,
        op: FilterOp,
        value: Json,
    ) -> Result<(), FilterError> {
        self.push(if first { " WHERE " } else { " AND " });
        self.push_filter(column, column_type, op, value)
    }

    /// The parameters pushed so far.
    pub fn params(&self) -> &[Param<'static>] {
        &self.params
    }

    /// The finished statement.
    pub fn finish(self) -> Statement {
        Statement {
            sql: self.sql,
            params: self.params,
            cacheable: !self.varies,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ident(name: &str) -> Ident {
        Ident::parse(name).unwrap()
    }

    #[test]
    fn insert_with_conflict_handling() {
        let (t, a, b) = (ident("customers"), ident("email"), ident("name"));
        assert_eq!(
            insert_sql(&t, &[&a, &b], &Conflict::Ignore(vec![a.clone()]), Some("*")),
            "INSERT INTO \"customers\" (\"email\", \"name\") VALUES ($1, $2) ON CONFLICT (\"email\") DO NOTHING RETURNING *"
        );
        assert_eq!(
            insert_sql(&t, &[&a, &b], &Conflict::Update(vec![a.clone()]), Some("*")),
            "INSERT INTO \"customers\" (\"email\", \"name\") VALUES ($1, $2) ON CONFLICT (\"email\") DO UPDATE SET \"name\" = excluded.\"name\" RETURNING *"
        );
        // A row nobody keeps (no `as:`) is not returned.
        assert_eq!(
            insert_sql(&t, &[&a], &Conflict::Fail, None),
            "INSERT INTO \"customers\" (\"email\") VALUES ($1)"
        );
    }

    #[test]
    fn upsert_increments_counters() {
        let (t, day, count) = (ident("analytics_daily"), ident("day"), ident("count"));
        assert_eq!(
            upsert_sql(&t, &[&day], &[], &[&count], Some("*")),
            "INSERT INTO \"analytics_daily\" (\"day\", \"count\") VALUES ($1, $2) ON CONFLICT (\"day\") DO UPDATE SET \"count\" = COALESCE(\"analytics_daily\".\"count\", 0) + excluded.\"count\" RETURNING *"
        );
    }

    #[test]
    fn unreadable_columns_are_read_as_text() {
        let columns = |types: &[&str]| {
            types
                .iter()
                .enumerate()
                .map(|(index, udt)| {
                    Column::new(super::super::Dialect::Postgres, format!("c{index}"), *udt)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(row_columns(&[]), "*");
        assert_eq!(row_columns(&columns(&["int4", "jsonb"])), "\"c0\", \"c1\"");
        assert_eq!(
            row_columns(&columns(&["text", "interval"])),
            "\"c0\", CAST(\"c1\" AS TEXT) AS \"c1\""
        );
    }

    #[test]
    fn filters_bind_every_value() {
        let mut builder = StatementBuilder::new("SELECT * FROM \"users\"");
        let text = ColumnType::Text;
        for (index, (column, column_type, op, value)) in [
            ("role", &text, FilterOp::Eq, json!(["MANAGER", "ADMIN"])),
            ("name", &text, FilterOp::Eq, json!("x' OR '1'='1")),
            ("deleted_at", &text, FilterOp::Eq, json!(null)),
            ("due", &ColumnType::Date, FilterOp::Lte, json!("2026-01-01")),
            ("status", &text, FilterOp::NotIn, json!([])),
        ]
        .into_iter()
        .enumerate()
        {
            builder
                .push_condition(index == 0, &ident(column), column_type, op, value)
                .unwrap();
        }
        let statement = builder.finish();
        assert_eq!(
            statement.sql,
            "SELECT * FROM \"users\" WHERE \"role\" IN ($1, $2) AND \"name\" = $3 AND \"deleted_at\" IS NULL AND \"due\" <= $4 AND 1 = 1"
        );
        assert_eq!(
            statement.params,
            vec![
                Param::Text("MANAGER".into()),
                Param::Text("ADMIN".into()),
                Param::Text("x' OR '1'='1".into()),
                Param::Date(chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()),
            ]
        );
    }

    #[test]
    fn filters_refuse_nonsense() {
        let mut builder = StatementBuilder::default();
        let text = ColumnType::Text;
        assert!(builder
            .push_filter(&ident("a"), &text, FilterOp::In, json!("x"))
            .is_err());
        assert!(builder
            .push_filter(&ident("a"), &text, FilterOp::Lt, json!(null))
            .is_err());
        assert!(builder
            .push_filter(&ident("a"), &text, FilterOp::IsNull, json!("yes"))
            .is_err());
        assert_eq!(
            builder
                .push_filter(&ident("n"), &ColumnType::BigInt, FilterOp::Eq, json!("x"))
                .unwrap_err()
                .to_string(),
            "column n: \"x\" does not fit type bigint: expected an integer (a number or a string of digits)"
        );
    }
}
