//! Rows as they come from either database, and their values as Rust types or as JSON.

use base64::Engine as _;
use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rusqlite::types::ValueRef;
use serde_json::Value as Json;
use sqlx::postgres::{PgRow, PgValueRef};
use sqlx::sqlite::SqliteRow;
use sqlx::{Column as _, ColumnIndex, Row as _, TypeInfo as _, ValueRef as _};

use super::InlineRow;

use crate::store::catalog::Column;
use crate::store::column_type::{
    decimal_json, instant_text, local_timestamp_text, sqlite_text_json, ColumnType,
};

/// A result row of either database.
pub enum Row {
    /// From SQLite.
    Sqlite(SqliteRow),
    /// From PostgreSQL.
    Postgres(PgRow),
    /// From SQLite, read on the caller's thread.
    Inline(InlineRow),
}

impl std::fmt::Debug for Row {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_tuple("Row")
            .field(&self.column_names())
            .finish()
    }
}

/// A column index by position or name, on both databases.
pub trait Index:
    ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + ColumnIndex<InlineRow> + Copy
{
}
impl<T: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + ColumnIndex<InlineRow> + Copy> Index for T {}

impl ColumnIndex<InlineRow> for usize {
    fn index(&self, row: &InlineRow) -> Result<usize, sqlx::Error> {
        row.value(*self).map(|_| *self)
    }
}

impl ColumnIndex<InlineRow> for &str {
    fn index(&self, row: &InlineRow) -> Result<usize, sqlx::Error> {
        row.position(self)
    }
}

impl Row {
    /// The value at `index` as `T`.
    pub fn try_get<T: Decode, I: Index>(&self, index: I) -> Result<T, sqlx::Error> {
        match self {
            Self::Sqlite(row) => T::from_sqlite(row, index.index(row)?),
            Self::Postgres(row) => T::from_postgres(row, index.index(row)?),
            Self::Inline(row) => {
                let index = index.index(row)?;
                T::from_sqlite_value(row.value(index)?)
                    .map_err(|message| decode_error(index, message))
            }
        }
    }

    /// Column names in order.
    pub fn column_names(&self) -> Vec<&str> {
        match self {
            Self::Sqlite(row) => row.columns().iter().map(|c| c.name()).collect(),
            Self::Postgres(row) => row.columns().iter().map(|c| c.name()).collect(),
            Self::Inline(row) => row.columns().iter().map(String::as_str).collect(),
        }
    }

    /// The row as a JSON object keyed by column name, each value decoded by its type: numbers
    /// as numbers, numeric exactly ([`decimal_json`]), booleans, dates, times and timestamps as
    /// text, json as the value, bytes as base64. On SQLite, whose values carry only a storage
    /// class, `columns` (the table's, when known) say which integers are booleans and which
    /// text is JSON.
    pub fn to_json(
        &self,
        columns: Option<&[Column]>,
    ) -> Result<serde_json::Map<String, Json>, sqlx::Error> {
        match self {
            Self::Sqlite(row) => {
                let mut object = serde_json::Map::with_capacity(row.columns().len());
                for (index, column) in row.columns().iter().enumerate() {
                    let declared = declared_type(columns, column.name());
                    object.insert(column.name().to_owned(), sqlite_json(row, index, declared)?);
                }
                Ok(object)
            }
            Self::Postgres(row) => {
                let mut object = serde_json::Map::with_capacity(row.columns().len());
                for (index, column) in row.columns().iter().enumerate() {
                    object.insert(column.name().to_owned(), postgres_json(row, index)?);
                }
                Ok(object)
            }
            Self::Inline(row) => {
                let mut object = serde_json::Map::with_capacity(row.columns().len());
                for (index, name) in row.columns().iter().enumerate() {
                    let declared = declared_type(columns, name);
                    object.insert(name.clone(), sqlite_value_json(row.value(index)?, declared));
                }
                Ok(object)
            }
        }
    }
}

fn declared_type<'c>(columns: Option<&'c [Column]>, name: &str) -> Option<&'c ColumnType> {
    columns?
        .iter()
        .find(|known| known.name == name)
        .map(|known| &known.column_type)
}

/// A SQLite value read inline as JSON, by the rules of [`sqlite_json`].
fn sqlite_value_json(value: ValueRef<'_>, declared: Option<&ColumnType>) -> Json {
    match (value, declared) {
        (ValueRef::Null, _) => Json::Null,
        (ValueRef::Integer(integer), Some(ColumnType::Boolean)) => Json::Bool(integer != 0),
        (ValueRef::Integer(integer), _) => Json::from(integer),
        (ValueRef::Real(float), _) => float_json(float),
        (ValueRef::Text(text), declared) => {
            let text = String::from_utf8_lossy(text).into_owned();
            match declared {
                Some(declared) => sqlite_text_json(declared, text),
                None => Json::String(text),
            }
        }
        (ValueRef::Blob(bytes), _) => {
            Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

fn decode_error(index: usize, message: String) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: index.to_string(),
        source: message.into(),
    }
}

fn sqlite_json(
    row: &SqliteRow,
    index: usize,
    declared: Option<&ColumnType>,
) -> Result<Json, sqlx::Error> {
    let raw = row.try_get_raw(index)?;
    if raw.is_null() {
        return Ok(Json::Null);
    }
    // The value's storage class, not the column's declared type.
    let storage = raw.type_info();
    Ok(match (storage.name(), declared) {
        ("INTEGER" | "BOOLEAN", Some(ColumnType::Boolean)) => {
            Json::Bool(row.try_get::<i64, _>(index)? != 0)
        }
        ("TEXT", Some(declared)) => sqlite_text_json(declared, row.try_get(index)?),
        ("INTEGER" | "BOOLEAN" | "INT4", _) => Json::from(row.try_get::<i64, _>(index)?),
        ("REAL", _) => float_json(row.try_get::<f64, _>(index)?),
        ("BLOB", _) => Json::String(
            base64::engine::general_purpose::STANDARD.encode(row.try_get::<Vec<u8>, _>(index)?),
        ),
        _ => Json::String(row.try_get_unchecked::<String, _>(index)?),
    })
}

fn float_json(float: f64) -> Json {
    // JSON has no NaN or infinity; their names are the honest rendering.
    serde_json::Number::from_f64(float)
        .map(Json::Number)
        .unwrap_or_else(|| Json::String(float.to_string()))
}

fn postgres_json(row: &PgRow, index: usize) -> Result<Json, sqlx::Error> {
    let raw: PgValueRef<'_> = row.try_get_raw(index)?;
    if raw.is_null() {
        return Ok(Json::Null);
    }
    let type_info = raw.type_info();
    Ok(match type_info.name() {
        "INT2" => Json::from(row.try_get::<i16, _>(index)?),
        "INT4" => Json::from(row.try_get::<i32, _>(index)?),
        "INT8" => Json::from(row.try_get::<i64, _>(index)?),
        // Through the f32's shortest text, so that a `real` 0.1 reads back as 0.1, not as the
        // double nearest the float nearest 0.1.
        "FLOAT4" => {
            let float: f32 = row.try_get(index)?;
            float_json(float.to_string().parse().unwrap_or(f64::from(float)))
        }
        "FLOAT8" => float_json(row.try_get::<f64, _>(index)?),
        "NUMERIC" => decimal_json(&row.try_get::<BigDecimal, _>(index)?),
        "BOOL" => Json::Bool(row.try_get(index)?),
        "TEXT" | "VARCHAR" | "CHAR" | "NAME" | "citext" => Json::String(row.try_get(index)?),
        "UUID" => Json::String(
            row.try_get::<uuid::Uuid, _>(index)?
                .hyphenated()
                .to_string(),
        ),
        "DATE" => Json::String(
            row.try_get::<NaiveDate, _>(index)?
                .format("%Y-%m-%d")
                .to_string(),
        ),
        "TIME" => Json::String(
            row.try_get::<NaiveTime, _>(index)?
                .format("%H:%M:%S%.f")
                .to_string(),
        ),
        "TIMESTAMP" => Json::String(local_timestamp_text(
            &row.try_get::<NaiveDateTime, _>(index)?,
        )),
        "TIMESTAMPTZ" => Json::String(instant_text(&row.try_get::<DateTime<Utc>, _>(index)?)),
        "JSON" | "JSONB" => row.try_get::<sqlx::types::Json<Json>, _>(index)?.0,
        "BYTEA" => Json::String(
            base64::engine::general_purpose::STANDARD.encode(row.try_get::<Vec<u8>, _>(index)?),
        ),
        "TEXT[]" | "VARCHAR[]" | "CHAR[]" => {
            Json::from(row.try_get::<Vec<Option<String>>, _>(index)?)
        }
        "INT2[]" => Json::from(row.try_get::<Vec<Option<i16>>, _>(index)?),
        "INT4[]" => Json::from(row.try_get::<Vec<Option<i32>>, _>(index)?),
        "INT8[]" => Json::from(row.try_get::<Vec<Option<i64>>, _>(index)?),
        other => {
            return Err(decode_error(
                index,
                format!(
                    "column {:?} has type {}, which crm-router cannot read; supported: {}",
                    row.columns()[index].name(),
                    other.to_ascii_lowercase(),
                    crate::store::column_type::SUPPORTED
                ),
            ))
        }
    })
}

/// A Rust type a column value decodes into on both databases. Integers decode from any
/// integer width on PostgreSQL (sqlx itself would insist on the exact width).
pub trait Decode: Sized {
    /// From a SQLite row.
    fn from_sqlite(row: &SqliteRow, index: usize) -> Result<Self, sqlx::Error>;
    /// From a PostgreSQL row.
    fn from_postgres(row: &PgRow, index: usize) -> Result<Self, sqlx::Error>;
    /// From a SQLite value read inline; the error says what the value was instead.
    fn from_sqlite_value(value: ValueRef<'_>) -> Result<Self, String>;
}

fn unexpected(value: ValueRef<'_>, wanted: &str) -> String {
    format!(
        "expected {wanted}, found a SQLite {}",
        match value.data_type() {
            rusqlite::types::Type::Null => "NULL",
            rusqlite::types::Type::Integer => "INTEGER",
            rusqlite::types::Type::Real => "REAL",
            rusqlite::types::Type::Text => "TEXT",
            rusqlite::types::Type::Blob => "BLOB",
        }
    )
}

macro_rules! decode_natively {
    ($($type:ty => |$value:ident| $inline:expr;)*) => {
        $(impl Decode for $type {
            fn from_sqlite(row: &SqliteRow, index: usize) -> Result<Self, sqlx::Error> {
                row.try_get(index)
            }
            fn from_postgres(row: &PgRow, index: usize) -> Result<Self, sqlx::Error> {
                row.try_get(index)
            }
            fn from_sqlite_value($value: ValueRef<'_>) -> Result<Self, String> {
                $inline
            }
        })*
    };
}

decode_natively! {
    String => |value| match value {
        ValueRef::Text(text) => String::from_utf8(text.to_vec()).map_err(|error| error.to_string()),
        other => Err(unexpected(other, "text")),
    };
    bool => |value| match value {
        ValueRef::Integer(integer) => Ok(integer != 0),
        other => Err(unexpected(other, "a boolean")),
    };
    Vec<u8> => |value| match value {
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Ok(bytes.to_vec()),
        other => Err(unexpected(other, "bytes")),
    };
}

impl Decode for i64 {
    fn from_sqlite(row: &SqliteRow, index: usize) -> Result<Self, sqlx::Error> {
        row.try_get(index)
    }
    fn from_postgres(row: &PgRow, index: usize) -> Result<Self, sqlx::Error> {
        match row.try_get_raw(index)?.type_info().name() {
            "INT2" => row.try_get::<i16, _>(index).map(i64::from),
            "INT4" => row.try_get::<i32, _>(index).map(i64::from),
            _ => row.try_get(index),
        }
    }
    fn from_sqlite_value(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Integer(integer) => Ok(integer),
            other => Err(unexpected(other, "an integer")),
        }
    }
}

impl Decode for f64 {
    fn from_sqlite(row: &SqliteRow, index: usize) -> Result<Self, sqlx::Error> {
        row.try_get(index)
    }
    fn from_postgres(row: &PgRow, index: usize) -> Result<Self, sqlx::Error> {
        match row.try_get_raw(index)?.type_info().name() {
            "FLOAT4" => row.try_get::<f32, _>(index).map(f64::from),
            _ => row.try_get(index),
        }
    }
    fn from_sqlite_value(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Real(float) => Ok(float),
            // As SQLite's own conversion: an integer in a REAL column is stored as one.
            ValueRef::Integer(integer) => Ok(integer as f64),
            other => Err(unexpected(other, "a number")),
        }
    }
}

/// JSON text (a nested object a statement built), parsed.
impl Decode for serde_json::Value {
    fn from_sqlite(row: &SqliteRow, index: usize) -> Result<Self, sqlx::Error> {
        parse_json(&String::from_sqlite(row, index)?)
    }
    fn from_postgres(row: &PgRow, index: usize) -> Result<Self, sqlx::Error> {
        parse_json(&String::from_postgres(row, index)?)
    }
    fn from_sqlite_value(value: ValueRef<'_>) -> Result<Self, String> {
        serde_json::from_str(&String::from_sqlite_value(value)?).map_err(|error| error.to_string())
    }
}

fn parse_json(text: &str) -> Result<serde_json::Value, sqlx::Error> {
    serde_json::from_str(text).map_err(|error| sqlx::Error::Decode(error.into()))
}

impl<T: Decode> Decode for Option<T> {
    fn from_sqlite(row: &SqliteRow, index: usize) -> Result<Self, sqlx::Error> {
        if row.try_get_raw(index)?.is_null() {
            return Ok(None);
        }
        T::from_sqlite(row, index).map(Some)
    }
    fn from_postgres(row: &PgRow, index: usize) -> Result<Self, sqlx::Error> {
        if row.try_get_raw(index)?.is_null() {
            return Ok(None);
        }
        T::from_postgres(row, index).map(Some)
    }
    fn from_sqlite_value(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Null => Ok(None),
            value => T::from_sqlite_value(value).map(Some),
        }
    }
}

/// A record type read from a row (the daemon's and the CRM's own tables).
pub trait FromRow: Sized {
    /// Reads the record.
    fn from_row(row: &Row) -> Result<Self, sqlx::Error>;
}

/// Implements [`FromRow`] for a struct whose fields are named like its columns:
/// `record_from_row!(Customer { id, name, email })`.
#[macro_export]
macro_rules! record_from_row {
    ($type:ident { $($field:ident),* $(,)? }) => {
        impl $crate::store::db::FromRow for $type {
            fn from_row(row: &$crate::store::db::Row) -> Result<Self, sqlx::Error> {
                Ok(Self {
                    $($field: row.try_get(stringify!($field))?,)*
                })
            }
        }
    };
}

macro_rules! tuple_from_row {
    ($($name:ident : $index:tt),*) => {
        impl<$($name: Decode),*> FromRow for ($($name,)*) {
            fn from_row(row: &Row) -> Result<Self, sqlx::Error> {
                Ok(($(row.try_get::<$name, _>($index)?,)*))
            }
        }
    };
}

tuple_from_row!(A: 0);
tuple_from_row!(A: 0, B: 1);
tuple_from_row!(A: 0, B: 1, C: 2);
tuple_from_row!(A: 0, B: 1, C: 2, D: 3);
