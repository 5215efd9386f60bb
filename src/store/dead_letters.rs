//! Events (or one route's handling of them) that failed for good, kept to inspect and replay.

use sqlx::AnyConnection;

use super::log::{decode_envelope, LogRecord};
use crate::template::now_rfc3339;

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
    connection: &mut AnyConnection,
    record: &LogRecord,
    stage: Option<&str>,
    error: &str,
) -> Result<String, sqlx::Error> {
    let (event_id, event_type) = match decode_envelope(&record.envelope) {
        Ok(envelope) => (envelope.event_id, envelope.event_type),
        Err(_) => (String::new(), String::new()),
    };
    let now = now_rfc3339();
    insert(
        connection,
        &NewDeadLetter {
            event_id: &event_id,
            topic: &record.topic,
            event_type: &event_type,
            key: &record.key,
            envelope: &record.envelope,
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
    connection: &mut AnyConnection,
    letter: &NewDeadLetter<'_>,
) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
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
    .bind(letter.error)
    .bind(i64::from(letter.attempts))
    .bind(letter.first_failed_at)
    .bind(now_rfc3339())
    .execute(connection)
    .await?;
    Ok(id)
}
