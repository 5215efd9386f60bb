//! Functions and filters route templates may call: ids, clocks and date arithmetic.
//!
//! Timestamps are RFC 3339 strings in UTC with millisecond precision, the same shape the
//! database columns and event envelopes use, so they compare and sort as text.

use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use minijinja::{Environment, Error, ErrorKind};

/// Current time as RFC 3339 (UTC, milliseconds).
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, Error> {
    if let Ok(timestamp) = DateTime::parse_from_rfc3339(text) {
        return Ok(timestamp.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc());
    }
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("{text:?} is not an RFC 3339 timestamp or YYYY-MM-DD date"),
    ))
}

pub(super) fn shift(
    text: &str,
    amount: i64,
    unit: fn(i64) -> Option<Duration>,
) -> Result<String, Error> {
    let delta = unit(amount).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("{amount} is out of range"),
        )
    })?;
    let shifted = parse_timestamp(text)?
        .checked_add_signed(delta)
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "date out of range"))?;
    Ok(shifted.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// `uuid()`: version 7 (time first, then random bits), so rows keyed by it are appended at the
/// end of their primary key's index instead of on a random page of it.
pub(super) fn uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// `today()`: the UTC date.
pub(super) fn today() -> String {
    Utc::now().format("%Y-%m-%d").to_string()
}

/// Registers `uuid()`, `now()`, `today()` and the filters `add_days`, `add_hours`,
/// `add_minutes`, `add_seconds` and `date`.
pub fn register(env: &mut Environment<'static>) {
    env.add_function("uuid", uuid);
    env.add_function("now", now_rfc3339);
    env.add_function("today", today);
    env.add_filter("add_days", |text: String, days: i64| {
        shift(&text, days, Duration::try_days)
    });
    env.add_filter("add_hours", |text: String, hours: i64| {
        shift(&text, hours, Duration::try_hours)
    });
    env.add_filter("add_minutes", |text: String, minutes: i64| {
        shift(&text, minutes, Duration::try_minutes)
    });
    env.add_filter("add_seconds", |text: String, seconds: i64| {
        shift(&text, seconds, Duration::try_seconds)
    });
    env.add_filter("date", |text: String| -> Result<String, Error> {
        Ok(parse_timestamp(&text)?.format("%Y-%m-%d").to_string())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str) -> Result<String, Error> {
        let mut env = Environment::new();
        register(&mut env);
        env.render_str(source, ())
    }

    #[test]
    fn date_arithmetic() {
        assert_eq!(
            render("{{ '2026-11-28T10:00:00Z' | add_days(3) }}").unwrap(),
            "2026-12-01T10:00:00.000Z"
        );
        assert_eq!(
            render("{{ '2026-11-28T10:00:00+09:00' | add_hours(-1) | date }}").unwrap(),
            "2026-11-28"
        );
        assert_eq!(
            render("{{ '2026-11-28' | add_minutes(90) }}").unwrap(),
            "2026-11-28T01:30:00.000Z"
        );
        assert!(render("{{ 'soon' | add_days(1) }}").is_err());
    }

    #[test]
    fn now_and_uuid_are_fresh() {
        let now = render("{{ now() }}").unwrap();
        assert!(DateTime::parse_from_rfc3339(&now).is_ok(), "{now}");
        let ids = render("{{ uuid() }} {{ uuid() }}").unwrap();
        let (a, b) = ids.split_once(' ').unwrap();
        assert_ne!(a, b);
        assert!(uuid::Uuid::parse_str(a).is_ok());
    }
}
