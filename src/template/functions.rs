//! Functions and filters route templates may call: ids, clocks and date arithmetic.
//!
//! Timestamps are RFC 3339 strings in UTC with millisecond precision, the same shape the
//! database columns and event envelopes use, so they compare and sort as text.

use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use minijinja::{Environment, Error, ErrorKind, State, Value};

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
    // Without the value: render errors end up in dead letters and logs, and event data may
    // be personal.
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "a text of {} characters is not an RFC 3339 timestamp or YYYY-MM-DD date",
            text.chars().count()
        ),
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

/// Where a `for_each` row's index is kept in the context: `uuid()` needs it to tell rows apart,
/// and no route author should have to. The name cannot clash with a route's: those are `event`,
/// `data`, `steps`, `env` and `row`.
pub const ITERATIONS_VARIABLE: &str = "__crm_router_rows";

/// Counts the `uuid()` calls of one render, so two in one template differ.
const UUID_CALLS: &str = "__crm_router_uuid_calls";

/// `uuid()`: the same id on every attempt of the same event at the same place in a route, so a
/// retried route writes the id its failed attempt would have written, and a webhook sees one id
/// per `Idempotency-Key`.
///
/// It is name-based: the bits after the time are SHA-1's (through UUID version 5) of the event
/// id, the template's place (route, step, field), the `for_each` row and which call in the
/// template this is. The leading 48 bits are the event's `timestamp` in milliseconds, and the
/// id is laid out as version 7, so rows keyed by it still go to the end of their primary key's
/// index. A timestamp that is not RFC 3339 puts zeros there.
pub(super) fn stable_uuid(state: &State) -> Result<String, Error> {
    let call = state
        .get_temp(UUID_CALLS)
        .and_then(|calls| u64::try_from(calls).ok())
        .unwrap_or(0);
    state.set_temp(UUID_CALLS, Value::from(call + 1));
    let event = state.lookup("event").unwrap_or_default();
    let rows = state.lookup(ITERATIONS_VARIABLE).unwrap_or_default();
    uuid_at(&event, &rows, state.name(), call).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            "uuid() is derived from the event, and there is none here; random_uuid() gives a fresh one",
        )
    })
}

/// The `call`-th `uuid()` of `template` for `event` in the `for_each` rows `rows` (undefined
/// outside loops); `None` without an event.
pub(super) fn uuid_at(event: &Value, rows: &Value, template: &str, call: u64) -> Option<String> {
    if event.is_undefined() || event.is_none() {
        return None;
    }
    let attribute = |name: &str| -> String {
        event
            .get_attr(name)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    // The registration suffix (`#14`) changes with unrelated edits to the route set.
    let place = template
        .rsplit_once('#')
        .map_or(template, |(place, _)| place);
    let rows = if rows.is_undefined() {
        String::new()
    } else {
        rows.to_string()
    };
    Some(
        event_uuid(
            &attribute("eventId"),
            &attribute("timestamp"),
            &format!("{place}\n{rows}\n{call}"),
        )
        .to_string(),
    )
}

/// The name-based, time-first id of `place` for one event (see [`stable_uuid`]).
fn event_uuid(event_id: &str, timestamp: &str, place: &str) -> uuid::Uuid {
    let millis = DateTime::parse_from_rfc3339(timestamp)
        .ok()
        .and_then(|time| u64::try_from(time.timestamp_millis()).ok())
        .filter(|millis| *millis < 1 << 48)
        .unwrap_or(0);
    let name = format!("{event_id}\n{place}");
    let digest = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes());
    let digest = digest.as_bytes();
    // Version 5 fixes the version bits of byte 6 and the variant bits of byte 8; the bytes
    // around them are all hash.
    let mut bits = [0u8; 10];
    bits[..6].copy_from_slice(&digest[..6]);
    bits[6..].copy_from_slice(&digest[12..]);
    uuid::Builder::from_unix_timestamp_millis(millis, &bits).into_uuid()
}

/// `random_uuid()`: a fresh version 7 id on every call, retries included.
pub(super) fn random_uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// `today()`: the UTC date.
pub(super) fn today() -> String {
    Utc::now().format("%Y-%m-%d").to_string()
}

/// Registers `uuid()`, `random_uuid()`, `now()`, `today()` and the filters `add_days`, `add_hours`,
/// `add_minutes`, `add_seconds` and `date`.
pub fn register(env: &mut Environment<'static>) {
    env.add_function("uuid", stable_uuid);
    env.add_function("random_uuid", random_uuid);
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
    fn now_and_random_uuid_are_fresh_and_uuid_needs_an_event() {
        let now = render("{{ now() }}").unwrap();
        assert!(DateTime::parse_from_rfc3339(&now).is_ok(), "{now}");
        let ids = render("{{ random_uuid() }} {{ random_uuid() }}").unwrap();
        let (a, b) = ids.split_once(' ').unwrap();
        assert_ne!(a, b);
        assert_eq!(uuid::Uuid::parse_str(a).unwrap().get_version_num(), 7);
        let error = render("{{ uuid() }}").unwrap_err().to_string();
        assert!(
            error.contains("uuid() is derived from the event, and there is none here; random_uuid() gives a fresh one"),
            "{error}"
        );
    }
}
