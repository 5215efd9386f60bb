//! Events (or one route's handling of them) that failed for good, kept to inspect and replay.

use super::db::{self, Conn, Pool};

use crate::event::Delivery;
use crate::template::now_rfc3339;

/// `action_kind` of an event the events endpoint refused (its schema).
pub const STAGE_SUBMIT: &str = "submit";
/// `action_kind` of an event Kafka refused.
pub const STAGE_PUBLISH: &str = "publish";

/// A failure to record.
#[derive(Debug, Clone)]
pub struct NewDeadLetter<'a> {
    /// Event id (may be empty when the envelope could not be decoded).
    pub event_id: &'a str,
    /// Topic.
    pub topic: &'a str,
    /// Event type (empty when unknown).
    pub event_type: &'a str,
    /// Entity key.
    pub key: &'a str,
    /// The envelope as received.
    pub envelope: &'a str,
    /// The route that failed; `None` when the event was refused before routing.
    pub route: Option<&'a str>,
    /// Path of the failing action (`2`, `1.for_each.0`).
    pub action_index: Option<&'a str>,
    /// Kind of the failing action.
    pub action_kind: Option<&'a str>,
    /// What went wrong.
    pub error: &'a str,
    /// How many attempts were made.
    pub attempts: u32,
    /// When the first attempt failed (RFC 3339).
    pub first_failed_at: &'a str,
}

/// Dead-letters an event no route has run yet (refused by its schema, or by Kafka), on its first
/// attempt. Id and type come from the envelope when it decodes; `stage` says which step refused
/// it (`publish` for the Kafka relay, `None` before routing).
pub async fn refuse(
    connection: &mut Conn<'_>,
    delivery: &Delivery,
    stage: Option<&str>,
    error: &str,
) -> Result<String, sqlx::Error> {
    let now = now_rfc3339();
    insert(
        connection,
        &NewDeadLetter {
            event_id: delivery.event_id().unwrap_or_default(),
            topic: &delivery.topic,
            event_type: delivery.event_type(),
            key: &delivery.key,
            envelope: &delivery.text,
            route: None,
            action_index: None,
            action_kind: stage,
            error,
            attempts: 1,
            first_failed_at: &now,
        },
    )
    .await
}

/// Inserts a dead letter inside the caller's transaction; returns its id.
pub async fn insert(
    connection: &mut Conn<'_>,
    letter: &NewDeadLetter<'_>,
) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    db::query(
        "INSERT INTO dead_letters (id, event_id, topic, event_type, event_key, envelope, route, action_index, action_kind, error, attempts, first_failed_at, last_failed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(id.as_str())
    .bind(letter.event_id)
    .bind(letter.topic)
    .bind(letter.event_type)
    .bind(letter.key)
    .bind(letter.envelope)
    .bind(letter.route)
    .bind(letter.action_index)
    .bind(letter.action_kind)
    // An error can quote what a server answered, NUL bytes included, which PostgreSQL cannot
    // store: the letter would fail on every attempt and its event would never settle.
    .bind(letter.error.replace('\0', "\u{FFFD}"))
    .bind(i64::from(letter.attempts))
    .bind(letter.first_failed_at)
    .bind(now_rfc3339())
    .execute(connection)
    .await?;
    // Every dead letter, whoever writes it (the engine, the scheduler, the events endpoint,
    // the relay), passes here.
    crate::telemetry::event_dead_lettered(letter.topic, letter.event_type);
    Ok(id)
}

/// Where a dead letter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for an operator.
    Pending,
    /// Replayed: its route ran again (successfully, or it failed into a new dead letter).
    Replayed,
    /// Discarded by an operator; kept for the record.
    Discarded,
}

impl Status {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Replayed => "REPLAYED",
            Status::Discarded => "DISCARDED",
        }
    }

    /// Parses `PENDING`, `REPLAYED` or `DISCARDED` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "PENDING" => Some(Status::Pending),
            "REPLAYED" => Some(Status::Replayed),
            "DISCARDED" => Some(Status::Discarded),
            _ => None,
        }
    }
}

/// A stored dead letter.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// Its id.
    pub id: String,
    /// The event's id (empty when the envelope could not be decoded).
    pub event_id: String,
    /// Topic.
    pub topic: String,
    /// Event type (empty when unknown).
    pub event_type: String,
    /// Entity key.
    pub key: String,
    /// The envelope as received.
    pub envelope: String,
    /// The route that failed; `None` when the event was refused before routing.
    pub route: Option<String>,
    /// Path of the failing action.
    pub action_index: Option<String>,
    /// Kind of the failing action (`publish` when Kafka refused the event).
    pub action_kind: Option<String>,
    /// What went wrong.
    pub error: String,
    /// Attempts made before it was dead-lettered.
    pub attempts: i64,
    /// When the first attempt failed.
    pub first_failed_at: String,
    /// When the last attempt failed.
    pub last_failed_at: String,
    /// `PENDING`, `REPLAYED` or `DISCARDED`.
    pub status: String,
}

/// Which dead letters to list, replay or discard. Times compare with the last failure; build
/// them with [`stored_time`] so they compare as the stored ones do.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this route's.
    pub route: Option<String>,
    /// Only this event type's.
    pub event_type: Option<String>,
    /// Last failed at or after.
    pub since: Option<String>,
    /// Last failed before.
    pub until: Option<String>,
    /// Only in this status.
    pub status: Option<Status>,
}

/// An RFC 3339 time in the form failure times are stored in (UTC, milliseconds, `Z`), which
/// is what makes them compare correctly as text; `None` if it is not RFC 3339.
pub fn stored_time(text: &str) -> Option<String> {
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(
        time.with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

const COLUMNS: &str = "id, event_id, topic, event_type, event_key, envelope, route, action_index, \
                       action_kind, error, attempts, first_failed_at, last_failed_at, status";

impl Filter {
    fn statement(&self, select: &str) -> super::sql::StatementBuilder {
        let mut statement = super::sql::StatementBuilder::new(format!(
            "SELECT {select} FROM dead_letters WHERE 1 = 1"
        ));
        let status = self.status.map(|status| status.as_str().to_owned());
        for (condition, value) in [
            (" AND route = ", &self.route),
            (" AND event_type = ", &self.event_type),
            (" AND last_failed_at >= ", &self.since),
            (" AND last_failed_at < ", &self.until),
            (" AND status = ", &status),
        ] {
            if let Some(value) = value {
                statement.push(condition);
                statement.push_param(value.clone());
            }
        }
        statement
    }
}

fn from_row(row: &db::Row) -> Result<DeadLetter, sqlx::Error> {
    Ok(DeadLetter {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        topic: row.try_get("topic")?,
        event_type: row.try_get("event_type")?,
        key: row.try_get("event_key")?,
        envelope: row.try_get("envelope")?,
        route: row.try_get("route")?,
        action_index: row.try_get("action_index")?,
        action_kind: row.try_get("action_kind")?,
        error: row.try_get("error")?,
        attempts: row.try_get("attempts")?,
        first_failed_at: row.try_get("first_failed_at")?,
        last_failed_at: row.try_get("last_failed_at")?,
        status: row.try_get("status")?,
    })
}

/// One page of the dead letters `filter` selects, newest failure first, and how many it
/// selects in all.
pub async fn list(
    pool: &Pool,
    filter: &Filter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<DeadLetter>, i64), sqlx::Error> {
    let total: i64 = {
        let statement = filter.statement("COUNT(*)").finish();
        statement.into_query().fetch_one(pool).await?.try_get(0)?
    };
    let mut statement = filter.statement(COLUMNS);
    statement.push(" ORDER BY last_failed_at DESC, id LIMIT ");
    statement.push_param(limit);
    statement.push(" OFFSET ");
    statement.push_param(offset);
    let rows = statement.finish().into_query().fetch_all(pool).await?;
    let letters = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    Ok((letters, total))
}

/// The ids `filter` selects, oldest failure first (the order a bulk replay runs them in).
pub async fn ids(pool: &Pool, filter: &Filter) -> Result<Vec<String>, sqlx::Error> {
    let mut statement = filter.statement("id");
    statement.push(" ORDER BY first_failed_at, id");
    let rows = statement.finish().into_query().fetch_all(pool).await?;
    rows.iter().map(|row| row.try_get::<String, _>(0)).collect()
}

/// The dead letter `id`.
pub async fn get(
    connection: impl db::Executor<'_>,
    id: &str,
) -> Result<Option<DeadLetter>, sqlx::Error> {
    let row = db::query(&format!("SELECT {COLUMNS} FROM dead_letters WHERE id = $1"))
        .bind(id)
        .fetch_optional(connection)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Moves a pending dead letter to `to`, inside the caller's transaction. False when it is not
/// pending (any more): two operators replaying one letter replay it once.
pub async fn settle(connection: &mut Conn<'_>, id: &str, to: Status) -> Result<bool, sqlx::Error> {
    let updated = db::query("UPDATE dead_letters SET status = $1 WHERE id = $2 AND status = $3")
        .bind(to.as_str())
        .bind(id)
        .bind(Status::Pending.as_str())
        .execute(connection)
        .await?;
    Ok(updated.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn filter_times_take_the_stored_form() {
        assert_eq!(
            super::stored_time("2026-11-29T12:00:00+02:00").as_deref(),
            Some("2026-11-29T10:00:00.000Z")
        );
        assert_eq!(
            super::stored_time("2026-11-29T10:00:00.5Z").as_deref(),
            Some("2026-11-29T10:00:00.500Z")
        );
        assert_eq!(super::stored_time("yesterday"), None);
    }
}
