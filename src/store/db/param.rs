//! Statement parameters: each value knows the type the database sees, and is bound once per
//! backend here.

use std::borrow::Cow;

use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde_json::Value as Json;
use sqlx::postgres::PgArguments;
use sqlx::sqlite::SqliteArguments;
use sqlx::Arguments;

use crate::store::column_type::{sqlite_instant_text, sqlite_time_text, sqlite_timestamp_text};

/// The type of a NULL parameter. PostgreSQL refuses a NULL of the wrong type for some columns
/// (a text NULL in a date column), so even a NULL carries one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `bigint`; PostgreSQL assigns it to integer, floating-point, numeric and text columns.
    Int,
    /// `double precision`.
    Float,
    /// `numeric`.
    Numeric,
    /// `boolean`.
    Bool,
    /// `text`.
    Text,
    /// `uuid`.
    Uuid,
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `timestamp`.
    Timestamp,
    /// `timestamptz`.
    TimestampTz,
    /// `jsonb` (assigned to `json` columns too).
    Json,
    /// `bytea`.
    Bytes,
    /// `text[]`.
    TextArray,
    /// `bigint[]`.
    IntArray,
}

/// One parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param<'q> {
    /// NULL of a type.
    Null(Kind),
    /// A boolean (an integer 0/1 on SQLite).
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Float(f64),
    /// Text.
    Text(Cow<'q, str>),
    /// An exact decimal (text on SQLite, where numeric affinity converts it).
    Numeric(BigDecimal),
    /// A UUID (text on SQLite).
    Uuid(uuid::Uuid),
    /// A date (`YYYY-MM-DD` text on SQLite).
    Date(NaiveDate),
    /// A time of day (text on SQLite).
    Time(NaiveTime),
    /// A timestamp without zone (text on SQLite).
    Timestamp(NaiveDateTime),
    /// An instant (RFC 3339 text in UTC on SQLite).
    TimestampTz(DateTime<Utc>),
    /// A JSON value (`jsonb` on PostgreSQL, JSON text on SQLite).
    Json(Json),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A text array (JSON text on SQLite).
    TextArray(Vec<Option<String>>),
    /// An integer array (JSON text on SQLite).
    IntArray(Vec<Option<i64>>),
}

impl Param<'static> {
    /// A JSON value bound by its own type: null, bool, integer, float, string; lists and maps
    /// as JSON text. Only for a SQLite column declared without a type, where a parameter's
    /// type may change from event to event.
    pub fn from_json(value: Json) -> Self {
        match value {
            Json::Null => Self::Null(Kind::Int),
            Json::Bool(flag) => Self::Bool(flag),
            Json::Number(number) => match number.as_i64() {
                Some(integer) => Self::Int(integer),
                None => Self::Float(number.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(text) => Self::Text(Cow::Owned(text)),
            other => Self::Text(Cow::Owned(other.to_string())),
        }
    }
}

impl Param<'_> {
    /// The value as JSON, to show what a statement binds (`crm-router simulate`): dates and
    /// times as ISO 8601 text, decimals as numbers when exact, bytes as `\\x` and hex.
    pub fn to_json(&self) -> Json {
        match self {
            Self::Null(_) => Json::Null,
            Self::Bool(flag) => Json::Bool(*flag),
            Self::Int(integer) => Json::from(*integer),
            Self::Float(float) => serde_json::Number::from_f64(*float)
                .map_or_else(|| Json::String(float.to_string()), Json::Number),
            Self::Text(text) => Json::String(text.to_string()),
            Self::Numeric(decimal) => crate::store::column_type::decimal_json(decimal),
            Self::Uuid(uuid) => Json::String(uuid.hyphenated().to_string()),
            Self::Date(date) => Json::String(date.format("%Y-%m-%d").to_string()),
            Self::Time(time) => Json::String(sqlite_time_text(time)),
            Self::Timestamp(timestamp) => Json::String(sqlite_timestamp_text(timestamp)),
            Self::TimestampTz(instant) => Json::String(sqlite_instant_text(instant)),
            Self::Json(value) => value.clone(),
            Self::Bytes(bytes) => {
                let mut text = String::with_capacity(2 + 2 * bytes.len());
                text.push_str("\\x");
                for byte in bytes {
                    let _ = std::fmt::Write::write_fmt(&mut text, format_args!("{byte:02x}"));
                }
                Json::String(text)
            }
            Self::TextArray(items) => Json::from(items.clone()),
            Self::IntArray(items) => Json::from(items.clone()),
        }
    }
}

type Encoded = Result<(), sqlx::error::BoxDynError>;

impl Param<'_> {
    /// The value SQLite stores: it has no types of its own for numeric, uuid, dates and times,
    /// JSON and arrays, so those are text (see [`crate::store::column_type`] for the formats).
    pub(super) fn sqlite_value(&self) -> Result<SqliteValue<'_>, serde_json::Error> {
        Ok(match self {
            Self::Null(_) => SqliteValue::Null,
            Self::Bool(flag) => SqliteValue::Int(i64::from(*flag)),
            Self::Int(integer) => SqliteValue::Int(*integer),
            Self::Float(float) => SqliteValue::Float(*float),
            Self::Text(text) => SqliteValue::Text(Cow::Borrowed(text)),
            Self::Bytes(bytes) => SqliteValue::Blob(bytes),
            Self::Numeric(decimal) => SqliteValue::Text(Cow::Owned(decimal.to_string())),
            Self::Uuid(uuid) => SqliteValue::Text(Cow::Owned(uuid.hyphenated().to_string())),
            Self::Date(date) => SqliteValue::Text(Cow::Owned(date.format("%Y-%m-%d").to_string())),
            Self::Time(time) => SqliteValue::Text(Cow::Owned(sqlite_time_text(time))),
            Self::Timestamp(timestamp) => {
                SqliteValue::Text(Cow::Owned(sqlite_timestamp_text(timestamp)))
            }
            Self::TimestampTz(instant) => {
                SqliteValue::Text(Cow::Owned(sqlite_instant_text(instant)))
            }
            Self::Json(value) => SqliteValue::Text(Cow::Owned(value.to_string())),
            Self::TextArray(items) => SqliteValue::Text(Cow::Owned(serde_json::to_string(items)?)),
            Self::IntArray(items) => SqliteValue::Text(Cow::Owned(serde_json::to_string(items)?)),
        })
    }

    pub(super) fn add_to_sqlite<'a>(&'a self, arguments: &mut SqliteArguments<'a>) -> Encoded {
        match self.sqlite_value()? {
            SqliteValue::Null => arguments.add(None::<i64>),
            SqliteValue::Int(integer) => arguments.add(integer),
            SqliteValue::Float(float) => arguments.add(float),
            SqliteValue::Text(text) => arguments.add(text),
            SqliteValue::Blob(bytes) => arguments.add(bytes),
        }
    }

    pub(super) fn add_to_postgres(&self, arguments: &mut PgArguments) -> Encoded {
        match self {
            Self::Null(kind) => match kind {
                Kind::Int => arguments.add(None::<i64>),
                Kind::Float => arguments.add(None::<f64>),
                Kind::Numeric => arguments.add(None::<BigDecimal>),
                Kind::Bool => arguments.add(None::<bool>),
                Kind::Text => arguments.add(None::<String>),
                Kind::Uuid => arguments.add(None::<uuid::Uuid>),
                Kind::Date => arguments.add(None::<NaiveDate>),
                Kind::Time => arguments.add(None::<NaiveTime>),
                Kind::Timestamp => arguments.add(None::<NaiveDateTime>),
                Kind::TimestampTz => arguments.add(None::<DateTime<Utc>>),
                Kind::Json => arguments.add(None::<sqlx::types::Json<Json>>),
                Kind::Bytes => arguments.add(None::<Vec<u8>>),
                Kind::TextArray => arguments.add(None::<Vec<String>>),
                Kind::IntArray => arguments.add(None::<Vec<i64>>),
            },
            Self::Bool(flag) => arguments.add(*flag),
            Self::Int(integer) => arguments.add(*integer),
            Self::Float(float) => arguments.add(*float),
            Self::Text(text) => arguments.add(text.as_ref()),
            Self::Numeric(decimal) => arguments.add(decimal),
            Self::Uuid(uuid) => arguments.add(uuid),
            Self::Date(date) => arguments.add(date),
            Self::Time(time) => arguments.add(time),
            Self::Timestamp(timestamp) => arguments.add(timestamp),
            Self::TimestampTz(instant) => arguments.add(instant),
            Self::Json(value) => arguments.add(sqlx::types::Json(value)),
            Self::Bytes(bytes) => arguments.add(bytes.as_slice()),
            Self::TextArray(items) => arguments.add(items),
            Self::IntArray(items) => arguments.add(items),
        }
    }
}

/// A parameter as one of SQLite's storage classes.
pub(super) enum SqliteValue<'a> {
    Null,
    Int(i64),
    Float(f64),
    Text(Cow<'a, str>),
    Blob(&'a [u8]),
}

/// A Rust value that binds as a parameter; `None` binds a NULL of the value's type.
pub trait IntoParam<'q> {
    /// The parameter.
    fn into_param(self) -> Param<'q>;
    /// The type of this value's NULL.
    const KIND: Kind;
}

macro_rules! into_param {
    ($($type:ty => $kind:ident, |$value:ident| $param:expr;)*) => {
        $(impl<'q> IntoParam<'q> for $type {
            fn into_param(self) -> Param<'q> {
                let $value = self;
                $param
            }
            const KIND: Kind = Kind::$kind;
        })*
    };
}

into_param! {
    &'q str => Text, |value| Param::Text(Cow::Borrowed(value));
    &'q String => Text, |value| Param::Text(Cow::Borrowed(value.as_str()));
    String => Text, |value| Param::Text(Cow::Owned(value));
    i64 => Int, |value| Param::Int(value);
    i32 => Int, |value| Param::Int(i64::from(value));
    u32 => Int, |value| Param::Int(i64::from(value));
    f64 => Float, |value| Param::Float(value);
    bool => Bool, |value| Param::Bool(value);
    &'q [u8] => Bytes, |value| Param::Bytes(value.to_vec());
}

impl<'q, T: IntoParam<'q>> IntoParam<'q> for Option<T> {
    fn into_param(self) -> Param<'q> {
        match self {
            Some(value) => value.into_param(),
            None => Param::Null(T::KIND),
        }
    }
    const KIND: Kind = T::KIND;
}

impl<'q> IntoParam<'q> for Param<'q> {
    fn into_param(self) -> Param<'q> {
        self
    }
    const KIND: Kind = Kind::Int;
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use serde_json::json;

    use super::*;

    #[test]
    fn parameters_show_as_the_json_a_route_would_write() {
        let instant = DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let shown: Vec<Json> = [
            Param::Null(Kind::Date),
            Param::Int(7),
            Param::Float(0.5),
            Param::Text("o-1".into()),
            Param::Numeric(BigDecimal::from_str("12.50").unwrap()),
            Param::Date(NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()),
            Param::TimestampTz(instant),
            Param::Json(json!({"a": [1]})),
            Param::Bytes(vec![0, 255]),
            Param::TextArray(vec![Some("a".into()), None]),
        ]
        .iter()
        .map(Param::to_json)
        .collect();
        assert_eq!(
            shown,
            [
                json!(null),
                json!(7),
                json!(0.5),
                json!("o-1"),
                json!(12.5),
                json!("2026-11-29"),
                json!("2026-11-29T10:00:00.000000Z"),
                json!({"a": [1]}),
                json!("\\x00ff"),
                json!(["a", null]),
            ]
        );
    }
}
