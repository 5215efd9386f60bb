//! The type of a table column as the daemon writes and reads it, from the type the table
//! declares, and the conversion of a route's JSON value into a parameter of that type.
//!
//! One set of rules serves both databases: PostgreSQL's declared types are exact, SQLite's are
//! read by affinity (with `BOOLEAN`, `JSON`, `DATE`, `TIME`, `DATETIME`/`TIMESTAMP` and `UUID`
//! recognised by name), so a route that writes a date into a date column behaves the same on
//! both: a value that is not a date is refused with the column and the value named, before the
//! database sees it.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use serde_json::Value as Json;

use super::db::Param;
use super::Dialect;

/// What the daemon can write to and read from a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    /// `smallint` (PostgreSQL).
    SmallInt,
    /// `integer` (PostgreSQL).
    Integer,
    /// `bigint` (PostgreSQL), any integer affinity (SQLite).
    BigInt,
    /// `numeric`/`decimal`: exact decimals.
    Numeric,
    /// `real` (PostgreSQL).
    Real,
    /// `double precision` (PostgreSQL), real affinity (SQLite).
    Double,
    /// `boolean`.
    Boolean,
    /// `text`, `varchar`, `char`.
    Text,
    /// `uuid`.
    Uuid,
    /// `date`.
    Date,
    /// `time` (without time zone).
    Time,
    /// `timestamp` (without time zone).
    Timestamp,
    /// `timestamptz`; on SQLite, `DATETIME` and `TIMESTAMP` (stored as RFC 3339 text in UTC).
    TimestampTz,
    /// `json`.
    Json,
    /// `jsonb`.
    Jsonb,
    /// `bytea` (PostgreSQL), blob affinity (SQLite): base64 in JSON.
    Bytes,
    /// `text[]`, `varchar[]`.
    TextArray,
    /// `smallint[]`, `integer[]`, `bigint[]`.
    IntegerArray,
    /// A SQLite column declared without a type, or with a name SQLite gives numeric affinity
    /// without meaning a number (`STRING`): values keep the type they have in JSON.
    Untyped,
    /// A type the daemon cannot write (the declared name, lower case).
    Unsupported(String),
}

/// The types a route may write, as `check` lists them.
pub const SUPPORTED: &str = "smallint, integer, bigint, numeric/decimal, real, double precision, \
boolean, text/varchar/char, uuid, date, time, timestamp, timestamptz, json, jsonb, bytea, \
text[] and integer[] (on SQLite: any declared type, by affinity)";

impl ColumnType {
    /// The type of a column declared as `declared` (PostgreSQL: `udt_name`; SQLite: the
    /// declared type as written).
    pub fn from_declared(dialect: Dialect, declared: &str) -> Self {
        let declared = declared.trim().to_ascii_lowercase();
        match dialect {
            Dialect::Postgres => Self::from_postgres(&declared),
            Dialect::Sqlite => Self::from_sqlite(&declared),
        }
    }

    fn from_postgres(udt: &str) -> Self {
        match udt {
            "int2" => Self::SmallInt,
            "int4" => Self::Integer,
            "int8" => Self::BigInt,
            "numeric" => Self::Numeric,
            "float4" => Self::Real,
            "float8" => Self::Double,
            "bool" => Self::Boolean,
            "text" | "varchar" | "bpchar" | "name" | "citext" => Self::Text,
            "uuid" => Self::Uuid,
            "date" => Self::Date,
            "time" => Self::Time,
            "timestamp" => Self::Timestamp,
            "timestamptz" => Self::TimestampTz,
            "json" => Self::Json,
            "jsonb" => Self::Jsonb,
            "bytea" => Self::Bytes,
            "_text" | "_varchar" | "_bpchar" => Self::TextArray,
            "_int2" | "_int4" | "_int8" => Self::IntegerArray,
            other => Self::Unsupported(other.to_owned()),
        }
    }

    /// SQLite's affinity rules (sqlite.org/datatype3.html §3.1), after the names it has no
    /// affinity for but a route author means something by.
    fn from_sqlite(declared: &str) -> Self {
        let base = declared.split('(').next().unwrap_or_default().trim();
        match base {
            "" => return Self::Untyped,
            "boolean" | "bool" => return Self::Boolean,
            "json" | "jsonb" => return Self::Json,
            "date" => return Self::Date,
            "time" => return Self::Time,
            "datetime" | "timestamp" | "timestamptz" => return Self::TimestampTz,
            "uuid" => return Self::Uuid,
            _ => {}
        }
        if declared.contains("int") {
            Self::BigInt
        } else if ["char", "clob", "text"]
            .iter()
            .any(|name| declared.contains(name))
        {
            Self::Text
        } else if declared.contains("blob") {
            Self::Bytes
        } else if ["real", "floa", "doub"]
            .iter()
            .any(|name| declared.contains(name))
        {
            Self::Double
        } else if ["numeric", "decimal", "number"].contains(&base) {
            Self::Numeric
        } else {
            // SQLite gives any other name (`STRING`, `MONEY`, …) numeric affinity, which still
            // stores text that is not a number as text; the value is bound as it is.
            Self::Untyped
        }
    }

    /// Whether routes can write this column.
    pub fn is_supported(&self) -> bool {
        !matches!(self, Self::Unsupported(_))
    }

    /// Converts a route's value into a parameter for this column, or says why it cannot be one.
    pub fn param(&self, value: Json) -> Result<Param<'static>, Mismatch> {
        match (self, value) {
            (_, Json::Null) => Ok(Param::Null(self.null_kind())),
            (Self::Untyped | Self::Unsupported(_), value) => Ok(Param::from_json(value)),
            (Self::Text, value) => Ok(Param::Text(text(value).into())),
            (Self::Json | Self::Jsonb, value) => Ok(Param::Json(value)),
            (_, value) => self.convert(&value).ok_or_else(|| Mismatch {
                column_type: self.clone(),
                value: abbreviated(&value),
            }),
        }
    }

    /// The conversions that read the value rather than keep it.
    fn convert(&self, value: &Json) -> Option<Param<'static>> {
        let as_str = || value.as_str();
        Some(match self {
            Self::SmallInt => Param::Int(integer(value).filter(|n| i16::try_from(*n).is_ok())?),
            Self::Integer => Param::Int(integer(value).filter(|n| i32::try_from(*n).is_ok())?),
            Self::BigInt => Param::Int(integer(value)?),
            Self::Numeric => Param::Numeric(decimal(value)?),
            Self::Real | Self::Double => Param::Float(float(value)?),
            Self::Boolean => Param::Bool(boolean(value)?),
            Self::Uuid => Param::Uuid(uuid::Uuid::parse_str(as_str()?).ok()?),
            Self::Date => Param::Date(date(as_str()?)?),
            Self::Time => Param::Time(time(as_str()?)?),
            Self::Timestamp => Param::Timestamp(timestamp(as_str()?)?),
            Self::TimestampTz => Param::TimestampTz(timestamp_tz(as_str()?)?),
            Self::Bytes => Param::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(as_str()?)
                    .ok()?,
            ),
            Self::TextArray => Param::TextArray(
                value
                    .as_array()?
                    .iter()
                    .map(|item| (!item.is_null()).then(|| text(item.clone())))
                    .collect(),
            ),
            Self::IntegerArray => Param::IntArray(
                value
                    .as_array()?
                    .iter()
                    .map(|item| match item {
                        Json::Null => Some(None),
                        item => integer(item).map(Some),
                    })
                    .collect::<Option<_>>()?,
            ),
            Self::Text | Self::Json | Self::Jsonb | Self::Untyped | Self::Unsupported(_) => {
                return None
            }
        })
    }

    fn null_kind(&self) -> super::db::Kind {
        use super::db::Kind;
        match self {
            Self::SmallInt
            | Self::Integer
            | Self::BigInt
            | Self::Untyped
            | Self::Unsupported(_) => Kind::Int,
            Self::Numeric => Kind::Numeric,
            Self::Real | Self::Double => Kind::Float,
            Self::Boolean => Kind::Bool,
            Self::Text => Kind::Text,
            Self::Uuid => Kind::Uuid,
            Self::Date => Kind::Date,
            Self::Time => Kind::Time,
            Self::Timestamp => Kind::Timestamp,
            Self::TimestampTz => Kind::TimestampTz,
            Self::Json | Self::Jsonb => Kind::Json,
            Self::Bytes => Kind::Bytes,
            Self::TextArray => Kind::TextArray,
            Self::IntegerArray => Kind::IntArray,
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::SmallInt => "smallint",
            Self::Integer => "integer",
            Self::BigInt => "bigint",
            Self::Numeric => "numeric",
            Self::Real => "real",
            Self::Double => "double precision",
            Self::Boolean => "boolean",
            Self::Text => "text",
            Self::Uuid => "uuid",
            Self::Date => "date",
            Self::Time => "time",
            Self::Timestamp => "timestamp",
            Self::TimestampTz => "timestamptz",
            Self::Json => "json",
            Self::Jsonb => "jsonb",
            Self::Bytes => "bytea",
            Self::TextArray => "text[]",
            Self::IntegerArray => "integer[]",
            Self::Untyped => "untyped",
            Self::Unsupported(name) => name,
        };
        formatter.write_str(name)
    }
}

/// A value that cannot be stored in a column of its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The column's type.
    pub column_type: ColumnType,
    /// The value, shortened for messages.
    pub value: String,
}

impl Mismatch {
    /// What a value of this column must look like.
    pub fn expected(&self) -> &'static str {
        match self.column_type {
            ColumnType::SmallInt => "an integer from -32768 to 32767",
            ColumnType::Integer => "an integer from -2147483648 to 2147483647",
            ColumnType::BigInt => "an integer (a number or a string of digits)",
            ColumnType::Numeric => "a number or a string holding a decimal number",
            ColumnType::Real | ColumnType::Double => "a number or a string holding one",
            ColumnType::Boolean => "true or false",
            ColumnType::Uuid => "a UUID string",
            ColumnType::Date => "a date, YYYY-MM-DD (or an RFC 3339 timestamp)",
            ColumnType::Time => "a time, HH:MM[:SS[.fraction]]",
            ColumnType::Timestamp | ColumnType::TimestampTz => {
                "an RFC 3339 timestamp, YYYY-MM-DD HH:MM:SS, or a date"
            }
            ColumnType::Bytes => "base64 text",
            ColumnType::TextArray => "a list",
            ColumnType::IntegerArray => "a list of integers",
            _ => "a value of the column's type",
        }
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} does not fit type {}: expected {}",
            self.value,
            self.column_type,
            self.expected()
        )
    }
}

fn abbreviated(value: &Json) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn integer(value: &Json) -> Option<i64> {
    match value {
        Json::Number(number) => number.as_i64().or_else(|| {
            let float = number.as_f64()?;
            (float.fract() == 0.0 && float.abs() < 9.0e18).then_some(float as i64)
        }),
        Json::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// PostgreSQL's `numeric` holds at most 131072 digits before the point and 16383 after; a
/// decimal past those would fail at the database without naming the column.
fn decimal(value: &Json) -> Option<BigDecimal> {
    let decimal = match value {
        Json::Number(number) => BigDecimal::from_str(&number.to_string()).ok()?,
        Json::String(text) => BigDecimal::from_str(text.trim()).ok()?,
        _ => return None,
    };
    let (_, scale) = decimal.as_bigint_and_exponent();
    let integer_digits = decimal.digits() as i64 - scale;
    (scale <= 16_383 && integer_digits <= 131_072).then_some(decimal)
}

fn float(value: &Json) -> Option<f64> {
    match value {
        Json::Number(number) => number.as_f64(),
        Json::String(text) => text.trim().parse().ok().filter(|f: &f64| f.is_finite()),
        _ => None,
    }
}

fn boolean(value: &Json) -> Option<bool> {
    match value {
        Json::Bool(flag) => Some(*flag),
        Json::String(text) if text.eq_ignore_ascii_case("true") => Some(true),
        Json::String(text) if text.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Text of a value for a text column: strings as they are, anything else as its JSON.
fn text(value: Json) -> String {
    match value {
        Json::String(text) => text,
        other => other.to_string(),
    }
}

fn date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .or_else(|| timestamp(text).map(|timestamp| timestamp.date()))
}

fn time(text: &str) -> Option<NaiveTime> {
    let text = text.trim();
    NaiveTime::parse_from_str(text, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
        .ok()
}

/// A timestamp as written: an offset is dropped, not applied (PostgreSQL does the same for a
/// `timestamp` column).
fn timestamp(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
        return Some(with_offset.naive_local());
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|date| date.and_hms_opt(0, 0, 0))
    })
}

/// An instant: an offset is applied; a timestamp without one is UTC.
fn timestamp_tz(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(text.trim()) {
        return Some(with_offset.with_timezone(&Utc));
    }
    timestamp(text).map(|naive| naive.and_utc())
}

/// The text a `timestamptz` value reads back as (RFC 3339 in UTC), also what SQLite stores.
pub fn instant_text(instant: &DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The text a `timestamp` value reads back as (RFC 3339 without an offset).
pub fn local_timestamp_text(timestamp: &NaiveDateTime) -> String {
    timestamp.format("%Y-%m-%dT%H:%M:%S%.f").to_string()
}

/// The JSON of an exact decimal: a number when it survives the trip through a JSON number
/// (an integer that fits 64 bits, or a decimal whose shortest float reads back equal), else
/// its exact text.
pub fn decimal_json(decimal: &BigDecimal) -> Json {
    let normalized = decimal.normalized();
    if normalized.is_integer() {
        if let Some(integer) = bigdecimal::ToPrimitive::to_i64(&normalized) {
            return Json::from(integer);
        }
    } else if let Some(float) = bigdecimal::ToPrimitive::to_f64(&normalized) {
        if float.is_finite()
            && BigDecimal::from_str(&float.to_string()).ok() == Some(normalized.clone())
        {
            return Json::from(float);
        }
    }
    // PostgreSQL's decimals arrive padded to its internal groups of four digits: the trailing
    // zeros are not the value's.
    Json::String(normalized.to_plain_string())
}

/// The text SQLite stores for an instant: a fixed six-digit fraction, so that text order is
/// time order for `where:` comparisons and `order_by` (a variable fraction sorts
/// `10:00:00.5Z` before `10:00:00Z`).
pub fn sqlite_instant_text(instant: &DateTime<Utc>) -> String {
    instant.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The text SQLite stores for a wall-clock timestamp, fixed-width like [`sqlite_instant_text`].
pub fn sqlite_timestamp_text(timestamp: &NaiveDateTime) -> String {
    timestamp.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// The text SQLite stores for a time of day, fixed-width like [`sqlite_instant_text`].
pub fn sqlite_time_text(time: &NaiveTime) -> String {
    time.format("%H:%M:%S%.6f").to_string()
}

/// How a value SQLite stored as text for a column of this type reads back: the same text a
/// PostgreSQL column of the type gives (no fraction when it is zero). Text that does not
/// parse is returned as it is.
pub fn sqlite_text_json(column_type: &ColumnType, text: String) -> Json {
    let canonical = match column_type {
        ColumnType::TimestampTz => timestamp_tz(&text).map(|instant| instant_text(&instant)),
        ColumnType::Timestamp => timestamp(&text).map(|naive| local_timestamp_text(&naive)),
        ColumnType::Time => time(&text).map(|time| time.format("%H:%M:%S%.f").to_string()),
        ColumnType::Json | ColumnType::Jsonb => {
            return serde_json::from_str(&text).unwrap_or(Json::String(text))
        }
        _ => None,
    };
    Json::String(canonical.unwrap_or(text))
}

/// `a date`, `an integer`: the type's name with its article, for messages.
pub fn with_article(column_type: &ColumnType) -> String {
    let name = column_type.to_string();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn declared_types_map_by_dialect() {
        let pg = |udt| ColumnType::from_declared(Dialect::Postgres, udt);
        assert_eq!(pg("int4"), ColumnType::Integer);
        assert_eq!(pg("_text"), ColumnType::TextArray);
        assert_eq!(pg("interval"), ColumnType::Unsupported("interval".into()));
        let lite = |declared| ColumnType::from_declared(Dialect::Sqlite, declared);
        assert_eq!(lite("BOOLEAN"), ColumnType::Boolean);
        assert_eq!(lite("JSONB"), ColumnType::Json);
        assert_eq!(lite("VARCHAR(20)"), ColumnType::Text);
        assert_eq!(lite("UNSIGNED BIG INT"), ColumnType::BigInt);
        assert_eq!(lite("DECIMAL(10,2)"), ColumnType::Numeric);
        assert_eq!(lite("DOUBLE PRECISION"), ColumnType::Double);
        assert_eq!(lite(""), ColumnType::Untyped);
        assert_eq!(lite("STRING"), ColumnType::Untyped);
        assert_eq!(lite("NUMERIC"), ColumnType::Numeric);
    }

    #[test]
    fn values_convert_or_name_what_was_expected() {
        assert_eq!(
            ColumnType::BigInt.param(json!("42")).unwrap(),
            Param::Int(42)
        );
        assert_eq!(ColumnType::BigInt.param(json!(3.0)).unwrap(), Param::Int(3));
        assert_eq!(
            ColumnType::Double.param(json!(3)).unwrap(),
            Param::Float(3.0)
        );
        assert_eq!(
            ColumnType::Text.param(json!(5)).unwrap(),
            Param::Text("5".into())
        );
        let refused = ColumnType::Integer
            .param(json!("not-a-number"))
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "\"not-a-number\" does not fit type integer: expected an integer from -2147483648 to 2147483647"
        );
        assert!(ColumnType::SmallInt.param(json!(40000)).is_err());
        assert!(ColumnType::Numeric.param(json!("1e-20000")).is_err());
        assert!(ColumnType::Numeric.param(json!("1e200000")).is_err());
        assert!(ColumnType::Boolean.param(json!(1)).is_err());
        assert_eq!(
            ColumnType::Date
                .param(json!("2026-11-29T23:30:00+09:00"))
                .unwrap(),
            Param::Date(NaiveDate::from_ymd_opt(2026, 11, 29).unwrap())
        );
        assert_eq!(
            ColumnType::TimestampTz
                .param(json!("2026-11-29T23:30:00+09:00"))
                .unwrap(),
            Param::TimestampTz(
                DateTime::parse_from_rfc3339("2026-11-29T14:30:00Z")
                    .unwrap()
                    .with_timezone(&Utc)
            )
        );
        assert_eq!(
            ColumnType::Bytes.param(json!("aGk=")).unwrap(),
            Param::Bytes(b"hi".to_vec())
        );
        assert_eq!(
            ColumnType::Jsonb.param(json!({"a": [1]})).unwrap(),
            Param::Json(json!({"a": [1]}))
        );
    }

    #[test]
    fn decimals_are_numbers_only_when_exact() {
        let json = |text: &str| decimal_json(&BigDecimal::from_str(text).unwrap());
        assert_eq!(json("12.50"), json!(12.5));
        assert_eq!(json("1200"), json!(1200));
        assert_eq!(json("0.1"), json!(0.1));
        assert_eq!(
            json("12345678901234567890.123456789"),
            json!("12345678901234567890.123456789")
        );
        assert_eq!(json("99999999999999999999"), json!("99999999999999999999"));
        // As sqlx decodes PostgreSQL's numeric: padded to groups of four digits.
        assert_eq!(
            json("12345678901234567890.123456789000"),
            json!("12345678901234567890.123456789")
        );
    }
}
