//! SQL text built from checked identifiers, with every value bound as a `$n` parameter, and the
//! conversions between JSON values and database values.

use std::fmt::Write as _;

use serde_json::Value as Json;
use sqlx::any::{AnyArguments, AnyRow, AnyTypeInfoKind};
use sqlx::query::Query;
use sqlx::{Any, Column, Row, ValueRef};

use crate::route::Ident;

/// A statement and its parameters, in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// SQL text with `$1`, `$2`, ... placeholders.
    pub sql: String,
    /// Parameter values.
    pub params: Vec<Json>,
}

impl Statement {
    /// The statement as a sqlx query with all parameters bound.
    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        bind_all(sqlx::query(&self.sql), &self.params)
    }
}

/// Binds JSON values: null → NULL, bool, integer, float, string; arrays and objects as JSON text.
///
/// The statement is prepared afresh for every execution (not cached): a route's values change
/// type from event to event (a number, then `none`, then text), and PostgreSQL fixes a cached
/// statement's parameter types at its first execution, refusing later values of another type.
/// NULL is bound as an integer NULL, which PostgreSQL assigns to text, integer and floating-point
/// columns alike (a text NULL is refused by numeric columns).
pub fn bind_all<'q>(
    mut query: Query<'q, Any, AnyArguments<'q>>,
    params: &'q [Json],
) -> Query<'q, Any, AnyArguments<'q>> {
    query = query.persistent(false);
    for param in params {
        query = match param {
            Json::Null => query.bind(None::<i32>),
            Json::Bool(flag) => query.bind(*flag),
            Json::Number(number) => match number.as_i64() {
                Some(integer) => query.bind(integer),
                None => query.bind(number.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(text) => query.bind(text.as_str()),
            other => query.bind(other.to_string()),
        };
    }
    query
}

/// Whether a route statement of fixed text may stay prepared on `connection` between events
/// (`Query::persistent`). On SQLite it may: values carry their own types, and a prepared
/// statement takes any. Not on PostgreSQL, for the reason given at [`bind_all`].
pub fn may_cache(connection: &sqlx::AnyConnection) -> bool {
    connection.backend_name() == "SQLite"
}

/// [`may_cache`] for a pool's connections.
pub fn pool_may_cache(pool: &sqlx::AnyPool) -> bool {
    pool.connect_options().database_url.scheme() == "sqlite"
}

/// A row as a JSON object keyed by column name.
pub fn row_to_json(row: &AnyRow) -> Result<serde_json::Map<String, Json>, sqlx::Error> {
    let mut object = serde_json::Map::with_capacity(row.columns().len());
    for (index, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(index)?;
        let value = if raw.is_null() {
            Json::Null
        } else {
            let kind = raw.type_info().kind();
            match kind {
                AnyTypeInfoKind::Null => Json::Null,
                AnyTypeInfoKind::Bool => Json::Bool(row.try_get::<bool, _>(index)?),
                AnyTypeInfoKind::SmallInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::BigInt => {
                    Json::from(row.try_get::<i64, _>(index)?)
                }
                AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => {
                    Json::from(row.try_get::<f64, _>(index)?)
                }
                AnyTypeInfoKind::Text => Json::String(row.try_get::<String, _>(index)?),
                AnyTypeInfoKind::Blob => {
                    let bytes = row.try_get::<Vec<u8>, _>(index)?;
                    Json::String(String::from_utf8_lossy(&bytes).into_owned())
                }
            }
        };
        object.insert(column.name().to_owned(), value);
    }
    Ok(object)
}

fn column_list(columns: &[&Ident]) -> String {
    columns
        .iter()
        .map(|column| column.quoted())
        .collect::<Vec<_>>()
        .join(", ")
}

fn placeholders(count: usize) -> String {
    (1..=count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
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

/// `INSERT INTO t (cols) VALUES ($1..) [ON CONFLICT ...] RETURNING *`.
pub fn insert_sql(table: &Ident, columns: &[&Ident], conflict: &Conflict) -> String {
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table.quoted(),
        column_list(columns),
        placeholders(columns.len())
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
    sql.push_str(" RETURNING *");
    sql
}

/// Upsert: insert keys + set + increments; on key conflict overwrite `set` and add increments.
pub fn upsert_sql(table: &Ident, keys: &[&Ident], set: &[&Ident], increment: &[&Ident]) -> String {
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
    format!(
        "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {} RETURNING *",
        table.quoted(),
        column_list(&all),
        placeholders(all.len()),
        column_list(keys),
        action
    )
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

/// Accumulates a statement's text and parameters.
#[derive(Debug, Default)]
pub struct StatementBuilder {
    sql: String,
    params: Vec<Json>,
}

impl StatementBuilder {
    /// Starts with `sql`.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            params: Vec::new(),
        }
    }

    /// Appends literal SQL (never user values).
    pub fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    /// Appends a placeholder bound to `value`.
    pub fn push_param(&mut self, value: Json) {
        self.params.push(value);
        let _ = write!(self.sql, "${}", self.params.len());
    }

    /// Appends `column op value`; a list becomes `IN (...)`, a null `IS NULL`.
    pub fn push_filter(&mut self, column: &Ident, op: FilterOp, value: Json) -> Result<(), String> {
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
                    return Err(format!(
                        "`{}` on column {column} needs a list",
                        if op == FilterOp::In { "in" } else { "not_in" }
                    ));
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
                for (index, item) in items.into_iter().enumerate() {
                    if index > 0 {
                        self.push(", ");
                    }
                    self.push_param(item);
                }
                self.push(")");
            }
            FilterOp::IsNull => {
                let is_null = match value {
                    Json::Bool(flag) => flag,
                    other => {
                        return Err(format!(
                            "`is_null` on column {column} takes true or false, got {other}"
                        ))
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
                    return Err(format!(
                        "cannot compare column {column} with null using an ordering operator"
                    ));
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
                self.push_param(value);
            }
        }
        Ok(())
    }

    /// Appends ` WHERE a AND b ...` for the given filters (nothing when empty).
    pub fn push_where(&mut self, filters: Vec<(&Ident, FilterOp, Json)>) -> Result<(), String> {
        for (index, (column, op, value)) in filters.into_iter().enumerate() {
            self.push(if index == 0 { " WHERE " } else { " AND " });
            self.push_filter(column, op, value)?;
        }
        Ok(())
    }

    /// The finished statement.
    pub fn finish(self) -> Statement {
        Statement {
            sql: self.sql,
            params: self.params,
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
            insert_sql(&t, &[&a, &b], &Conflict::Ignore(vec![a.clone()])),
            "INSERT INTO \"customers\" (\"email\", \"name\") VALUES ($1, $2) ON CONFLICT (\"email\") DO NOTHING RETURNING *"
        );
        assert_eq!(
            insert_sql(&t, &[&a, &b], &Conflict::Update(vec![a.clone()])),
            "INSERT INTO \"customers\" (\"email\", \"name\") VALUES ($1, $2) ON CONFLICT (\"email\") DO UPDATE SET \"name\" = excluded.\"name\" RETURNING *"
        );
    }

    #[test]
    fn upsert_increments_counters() {
        let (t, day, count) = (ident("analytics_daily"), ident("day"), ident("count"));
        assert_eq!(
            upsert_sql(&t, &[&day], &[], &[&count]),
            "INSERT INTO \"analytics_daily\" (\"day\", \"count\") VALUES ($1, $2) ON CONFLICT (\"day\") DO UPDATE SET \"count\" = COALESCE(\"analytics_daily\".\"count\", 0) + excluded.\"count\" RETURNING *"
        );
    }

    #[test]
    fn filters_bind_every_value() {
        let mut builder = StatementBuilder::new("SELECT * FROM \"users\"");
        builder
            .push_where(vec![
                (&ident("role"), FilterOp::Eq, json!(["MANAGER", "ADMIN"])),
                (&ident("name"), FilterOp::Eq, json!("x' OR '1'='1")),
                (&ident("deleted_at"), FilterOp::Eq, json!(null)),
                (&ident("due"), FilterOp::Lte, json!("2026-01-01")),
                (&ident("status"), FilterOp::NotIn, json!([])),
            ])
            .unwrap();
        let statement = builder.finish();
        assert_eq!(
            statement.sql,
            "SELECT * FROM \"users\" WHERE \"role\" IN ($1, $2) AND \"name\" = $3 AND \"deleted_at\" IS NULL AND \"due\" <= $4 AND 1 = 1"
        );
        assert_eq!(
            statement.params,
            vec![
                json!("MANAGER"),
                json!("ADMIN"),
                json!("x' OR '1'='1"),
                json!("2026-01-01")
            ]
        );
    }

    #[test]
    fn filters_refuse_nonsense() {
        let mut builder = StatementBuilder::default();
        assert!(builder
            .push_filter(&ident("a"), FilterOp::In, json!("x"))
            .is_err());
        assert!(builder
            .push_filter(&ident("a"), FilterOp::Lt, json!(null))
            .is_err());
        assert!(builder
            .push_filter(&ident("a"), FilterOp::IsNull, json!("yes"))
            .is_err());
    }
}
