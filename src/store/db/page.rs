//! A list page as the API answers it: one JSON array of objects, rendered from the rows of a
//! page statement, and how many rows match in all.
//!
//! On SQLite's inline readers the rows come in the page's order straight from its index and
//! are written as JSON here, from values borrowed from SQLite: SQLite's own `json_object`
//! and the sorter its aggregate `ORDER BY` needs cost more than the rows themselves
//! (`crm-router bench --variant rest-read`). The count is remembered per read connection
//! until the database changes ([`super::readers`]). Elsewhere (PostgreSQL, an in-memory
//! SQLite database behind sqlx) the database renders the page in the same statement as the
//! count, one round trip: `json_agg` or `json_group_array` with the page's `ORDER BY`.

use rusqlite::types::ValueRef;

use super::{inline, query, Param, Pool};
use crate::store::Dialect;

/// How one column of a row appears in the page's JSON objects (the CRM's records list theirs,
/// matching their `Serialize`; a unit test there compares them).
#[derive(Debug, Clone, Copy)]
pub struct JsonField {
    key: &'static str,
    column: &'static str,
    shown: Shown,
}

/// How a column's value is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    /// As it is (text, integers).
    AsIs,
    /// An integer 0/1 as `true`/`false`.
    Flag,
    /// A double, to the last digit.
    Float,
    /// JSON text (an object the statement built), shown as the JSON it holds.
    Json,
}

/// A field shown as its column's value.
pub const fn field(key: &'static str, column: &'static str) -> JsonField {
    JsonField {
        key,
        column,
        shown: Shown::AsIs,
    }
}

/// An integer 0/1 column shown as `true`/`false`.
pub const fn flag(key: &'static str, column: &'static str) -> JsonField {
    JsonField {
        key,
        column,
        shown: Shown::Flag,
    }
}

/// A floating-point column. SQLite's `json_object` prints a double with 15 significant digits
/// (0.1 + 0.2 became 0.3, which serde prints as 0.30000000000000004), so there it is printed
/// with 17, which reads back as the same double; infinities, which JSON cannot hold, are
/// `null` as serde writes them.
pub const fn float(key: &'static str, column: &'static str) -> JsonField {
    JsonField {
        key,
        column,
        shown: Shown::Float,
    }
}

/// A column holding JSON text that the statement built (a nested object), shown as that JSON.
pub const fn json(key: &'static str, column: &'static str) -> JsonField {
    JsonField {
        key,
        column,
        shown: Shown::Json,
    }
}

/// The SQL expression of one row as a JSON object of `fields`.
fn json_object_sql(dialect: Dialect, fields: &[JsonField]) -> String {
    let pairs: Vec<String> = fields
        .iter()
        .map(|field| {
            let column = format!("\"{}\"", field.column);
            let value = match (field.shown, dialect) {
                (Shown::AsIs, _) | (Shown::Float, Dialect::Postgres) => column,
                (Shown::Flag, Dialect::Sqlite) => {
                    format!("json(CASE WHEN {column} <> 0 THEN 'true' ELSE 'false' END)")
                }
                (Shown::Flag, Dialect::Postgres) => format!("({column} <> 0)"),
                (Shown::Json, Dialect::Sqlite) => format!("json({column})"),
                (Shown::Json, Dialect::Postgres) => format!("({column})::json"),
                (Shown::Float, Dialect::Sqlite) => format!(
                    "CASE WHEN {column} IS NULL OR abs({column}) > 1.7976931348623157e308 \
                     THEN NULL ELSE json(printf('%!.17g', {column})) END"
                ),
            };
            format!("'{}', {value}", field.key)
        })
        .collect();
    match dialect {
        Dialect::Sqlite => format!("json_object({})", pairs.join(", ")),
        Dialect::Postgres => format!("json_build_object({})", pairs.join(", ")),
    }
}

/// A page's statements: the count of every matching row, and one page of them in order.
#[derive(Debug, Clone, Copy)]
pub struct PageQuery<'a> {
    /// `SELECT COUNT(*) FROM … WHERE …`.
    pub count: &'a str,
    /// The count's parameters.
    pub count_params: &'a [Param<'static>],
    /// `SELECT <the fields' columns> FROM … WHERE … ORDER BY <order> LIMIT … OFFSET …`, whose
    /// first parameters are the count's own, in the same order.
    pub page: &'a str,
    /// The page's parameters.
    pub page_params: &'a [Param<'static>],
    /// Whether the statements' text is the same for other values (no `IN` list), so that
    /// their prepared statements and the count may be kept.
    pub cacheable: bool,
    /// The fields of each object, in the page's column order.
    pub fields: &'a [JsonField],
    /// The page's `ORDER BY` terms, for the databases that aggregate the page themselves.
    pub order: &'a str,
}

/// How many rows match, and the page as one JSON array.
pub async fn fetch(pool: &Pool, page: PageQuery<'_>) -> Result<(i64, String), sqlx::Error> {
    match pool {
        Pool::SqliteReaders(readers) => {
            let mut reader = readers.get().await?;
            // One read transaction: the count and the page describe the same moment, as the
            // single aggregated statement does.
            inline::run_batch(&reader, "BEGIN")?;
            let read = reader
                .count(page.count, page.count_params, page.cacheable)
                .and_then(|total| Ok((total, render_inline(&reader, &page)?)));
            let ended =
                inline::run_batch(&reader, if read.is_ok() { "COMMIT" } else { "ROLLBACK" });
            let read = read?;
            ended?;
            Ok(read)
        }
        Pool::Sqlite(_) => aggregated(pool, Dialect::Sqlite, &page).await,
        Pool::Postgres(_) => aggregated(pool, Dialect::Postgres, &page).await,
    }
}

/// The page's rows written as JSON objects, in the order SQLite returns them.
fn render_inline(
    connection: &rusqlite::Connection,
    page: &PageQuery<'_>,
) -> Result<String, sqlx::Error> {
    let mut json = Vec::with_capacity(256);
    json.push(b'[');
    let mut first = true;
    inline::for_each_row(
        connection,
        page.page,
        page.page_params,
        page.cacheable,
        |row| {
            if !std::mem::take(&mut first) {
                json.push(b',');
            }
            json.push(b'{');
            for (index, field) in page.fields.iter().enumerate() {
                if index > 0 {
                    json.push(b',');
                }
                write_json(&mut json, field.key)?;
                json.push(b':');
                let value = row.get_ref(index).map_err(inline::into_sqlx)?;
                write_field(&mut json, field, value)?;
            }
            json.push(b'}');
            Ok(())
        },
    )?;
    json.push(b']');
    String::from_utf8(json).map_err(|error| sqlx::Error::Decode(error.into()))
}

/// One value as its record's `Serialize` writes it.
fn write_field(
    json: &mut Vec<u8>,
    field: &JsonField,
    value: ValueRef<'_>,
) -> Result<(), sqlx::Error> {
    match (field.shown, value) {
        // As `col <> 0` in SQL: NULL is not true.
        (Shown::Flag, ValueRef::Null) => json.extend_from_slice(b"false"),
        (Shown::Flag, ValueRef::Integer(integer)) => write_json(json, integer != 0)?,
        (Shown::Flag, ValueRef::Real(real)) => write_json(json, real != 0.0)?,
        (_, ValueRef::Null) => json.extend_from_slice(b"null"),
        // Built by the statement itself (`json_object`), so it is JSON already.
        (Shown::Json, ValueRef::Text(text)) => json.extend_from_slice(text),
        (Shown::Float, ValueRef::Integer(integer)) => write_json(json, integer as f64)?,
        (_, ValueRef::Integer(integer)) => write_json(json, integer)?,
        // serde writes a non-finite double as null, as the record does.
        (_, ValueRef::Real(real)) => write_json(json, real)?,
        (_, ValueRef::Text(text)) => write_json(json, &*String::from_utf8_lossy(text))?,
        (_, ValueRef::Blob(_)) => {
            return Err(sqlx::Error::Decode(
                format!(
                    "column {} holds a BLOB, which a JSON page cannot show",
                    field.column
                )
                .into(),
            ))
        }
    }
    Ok(())
}

fn write_json(json: &mut Vec<u8>, value: impl serde::Serialize) -> Result<(), sqlx::Error> {
    serde_json::to_writer(&mut *json, &value).map_err(|error| sqlx::Error::Decode(error.into()))
}

/// One statement, one row: the count as an uncorrelated subquery (evaluated once, through the
/// index) and the page aggregated into its JSON text by the database, in `order`.
async fn aggregated(
    pool: &Pool,
    dialect: Dialect,
    page: &PageQuery<'_>,
) -> Result<(i64, String), sqlx::Error> {
    let object = json_object_sql(dialect, page.fields);
    let order = page.order;
    let aggregate = match dialect {
        Dialect::Sqlite => format!("json_group_array({object} ORDER BY {order})"),
        Dialect::Postgres => {
            format!("COALESCE(json_agg({object} ORDER BY {order}), '[]'::json)::text")
        }
    };
    let sql = format!(
        "SELECT ({}) AS total, (SELECT {aggregate} FROM ({}) AS page) AS items",
        page.count, page.page
    );
    query(&sql)
        .bind_all(page.page_params.iter().cloned())
        .persistent(page.cacheable)
        .fetch_one_as(pool)
        .await
}
