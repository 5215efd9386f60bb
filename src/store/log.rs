//! The event log: the embedded bus's topics and, in Kafka mode, the outbox the relay drains.
//!
//! Every event the daemon accepts or emits is appended here in the transaction that caused it.
//! The embedded consumer reads it in `seq` order; with one writer connection on SQLite, `seq`
//! order is commit order (on PostgreSQL an advisory lock gives the same guarantee), so a
//! consumer position never skips a row committed later.

use super::db::{self, Conn, Pool};
use super::sql::placeholder_rows;

use super::StoreError;
use crate::event::{Delivery, Event, Origin};
use crate::template::now_rfc3339;

/// The stream name under which the embedded bus stores its consumer position.
pub const EMBEDDED_STREAM: &str = "__event_log";

/// Advisory lock key serialising appends on PostgreSQL ("crmrlog" in ASCII).
const APPEND_LOCK: i64 = 0x63_72_6d_72_6c_6f_67;

/// One log row as the outbox relay reads it.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// Position in the log.
    pub seq: i64,
    /// Topic.
    pub topic: String,
    /// Entity key.
    pub key: String,
    /// The event's type (also in the envelope), for the log line of its publication.
    pub event_type: String,
    /// The envelope JSON as stored.
    pub envelope: String,
}

/// Appends `event`; returns false when an event with the same id is already in the log
/// (re-submitting an event is idempotent).
pub async fn append(connection: &mut Conn<'_>, event: &Event) -> Result<bool, sqlx::Error> {
    Ok(append_all(connection, std::slice::from_ref(event)).await? == 1)
}

/// Rows per multi-row insert: 6 parameters each stays far below SQLite's and PostgreSQL's
/// parameter limits.
const APPEND_CHUNK: usize = 200;

/// Appends `events` in order with multi-row inserts (one round trip per 200 events, not one
/// per event); events whose id is already in the log are skipped. Returns how many were new.
pub async fn append_all(connection: &mut Conn<'_>, events: &[Event]) -> Result<u64, sqlx::Error> {
    if events.is_empty() {
        return Ok(0);
    }
    take_append_lock(connection).await?;
    let created_at = now_rfc3339();
    let mut appended = 0;
    for chunk in events.chunks(APPEND_CHUNK) {
        let texts: Vec<String> = chunk.iter().map(envelope_text).collect();
        appended += append_query(chunk, &texts, &created_at, "")
            .execute(&mut *connection)
            .await?
            .rows_affected();
    }
    Ok(appended)
}

/// [`append_all`], returning the events that were new as the deliveries a consumer reads
/// them as, in `seq` order.
pub async fn append_delivered(
    connection: &mut Conn<'_>,
    events: &[Event],
) -> Result<Vec<Delivery>, sqlx::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    take_append_lock(connection).await?;
    let created_at = now_rfc3339();
    // Serialised once, for the insert and for the deliveries.
    let texts: Vec<String> = events.iter().map(envelope_text).collect();
    let mut seqs = std::collections::HashMap::with_capacity(events.len());
    for (chunk, chunk_texts) in events.chunks(APPEND_CHUNK).zip(texts.chunks(APPEND_CHUNK)) {
        // Neither database promises RETURNING's order: rows are matched by id.
        let rows = append_query(chunk, chunk_texts, &created_at, " RETURNING seq, event_id")
            .fetch_all(&mut *connection)
            .await?;
        for row in rows {
            seqs.insert(
                row.try_get::<String, _>("event_id")?,
                row.try_get::<i64, _>("seq")?,
            );
        }
    }
    let mut delivered: Vec<Delivery> = events
        .iter()
        .zip(texts)
        .filter_map(|(event, text)| {
            // Taken out, so a second event with the same id (which the insert skipped)
            // gets none.
            let seq = seqs.remove(&event.envelope.event_id)?;
            Some(Delivery::appended(seq, event.clone(), text))
        })
        .collect();
    delivered.sort_by_key(|delivery| delivery.position_after());
    Ok(delivered)
}

/// On PostgreSQL, sequence values are handed out at insert time, not at commit, so a consumer
/// could read seq 11 before seq 10 commits and never go back for it. Appending takes a
/// transaction-scoped advisory lock first, which makes appends commit in `seq` order (SQLite
/// gets the same from its single writer connection).
async fn take_append_lock(connection: &mut Conn<'_>) -> Result<(), sqlx::Error> {
    if connection.dialect() == super::Dialect::Postgres {
        db::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK)
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// The multi-row insert of `chunk`, whose envelopes serialised are `texts`, followed by
/// `returning`.
fn append_query<'q>(
    chunk: &'q [Event],
    texts: &'q [String],
    created_at: &'q str,
    returning: &str,
) -> db::Query<'q> {
    // SQLite and PostgreSQL insert a VALUES list in order, so `seq` follows `events`.
    let sql = format!(
        "INSERT INTO event_log (event_id, topic, event_key, event_type, envelope, created_at) \
         VALUES {} ON CONFLICT (event_id) DO NOTHING{returning}",
        placeholder_rows(chunk.len(), 6)
    );
    let mut query = db::query_owned(sql);
    for (event, text) in chunk.iter().zip(texts) {
        query = query
            .bind(event.envelope.event_id.as_str())
            .bind(event.topic.as_str())
            .bind(event.key.as_str())
            .bind(event.envelope.event_type.as_str())
            .bind(text.as_str())
            .bind(created_at);
    }
    query
}

fn envelope_text(event: &Event) -> String {
    serde_json::to_string(&event.envelope).expect("envelopes serialise")
}

/// Up to `limit` events after position `after`, in order, each decoded once.
pub async fn read_after(pool: &Pool, after: i64, limit: i64) -> Result<Vec<Delivery>, StoreError> {
    let rows = db::query(
        "SELECT seq, topic, event_key, envelope FROM event_log WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Delivery::new(
                Origin::Log(row.try_get("seq")?),
                row.try_get("topic")?,
                row.try_get("event_key")?,
                row.try_get("envelope")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// Up to `limit` events not yet published to Kafka, in order (the outbox).
pub async fn unpublished(pool: &Pool, limit: i64) -> Result<Vec<LogRecord>, StoreError> {
    let rows = db::query(
        "SELECT seq, topic, event_key, event_type, envelope FROM event_log \
         WHERE published_at IS NULL \
         ORDER BY seq LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(LogRecord {
                seq: row.try_get("seq")?,
                topic: row.try_get("topic")?,
                key: row.try_get("event_key")?,
                event_type: row.try_get("event_type")?,
                envelope: row.try_get("envelope")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// On switching to Kafka: marks the events the embedded consumer `consumer` already handled as
/// published without sending them, so Kafka consumers do not apply them a second time.
/// Returns how many rows were retired.
pub async fn retire_consumed(
    connection: &mut Conn<'_>,
    consumer: &str,
    at: &str,
) -> Result<u64, sqlx::Error> {
    let retired = db::query(
        "UPDATE event_log SET published_at = $1 WHERE published_at IS NULL AND seq <= \
         (SELECT COALESCE(MAX(position), 0) FROM consumer_positions \
          WHERE consumer = $2 AND topic = $3 AND partition = 0)",
    )
    .bind(at)
    .bind(consumer)
    .bind(EMBEDDED_STREAM)
    .execute(connection)
    .await?;
    Ok(retired.rows_affected())
}

/// Puts a published event back into the outbox (replaying an event Kafka refused).
pub async fn unpublish(connection: &mut Conn<'_>, event_id: &str) -> Result<(), sqlx::Error> {
    db::query("UPDATE event_log SET published_at = NULL WHERE event_id = $1")
        .bind(event_id)
        .execute(connection)
        .await?;
    Ok(())
}

/// How many events wait in the outbox.
pub async fn unpublished_count(pool: &Pool) -> Result<i64, StoreError> {
    let row = db::query("SELECT COUNT(*) AS backlog FROM event_log WHERE published_at IS NULL")
        .fetch_one(pool)
        .await?;
    Ok(row.try_get("backlog")?)
}

/// Marks events as acknowledged by Kafka.
pub async fn mark_published(
    connection: &mut Conn<'_>,
    seqs: &[i64],
    at: &str,
) -> Result<(), sqlx::Error> {
    for chunk in seqs.chunks(500) {
        let placeholders: Vec<String> = (2..chunk.len() + 2).map(|n| format!("${n}")).collect();
        let sql = format!(
            "UPDATE event_log SET published_at = $1 WHERE seq IN ({})",
            placeholders.join(", ")
        );
        let mut query = db::query(&sql).bind(at);
        for seq in chunk {
            query = query.bind(*seq);
        }
        query.execute(&mut *connection).await?;
    }
    Ok(())
}

/// Events in the log after the embedded consumer's position.
pub async fn embedded_lag(pool: &Pool) -> Result<i64, StoreError> {
    let row = db::query(
        "SELECT (SELECT COALESCE(MAX(seq), 0) FROM event_log) - \
                (SELECT COALESCE(MAX(position), 0) FROM consumer_positions WHERE topic = $1) AS lag",
    )
    .bind(EMBEDDED_STREAM)
    .fetch_one(pool)
    .await?;
    Ok(row.try_get("lag")?)
}

/// The highest position in the log (0 when empty).
pub async fn head(pool: &Pool) -> Result<i64, StoreError> {
    let row = db::query("SELECT COALESCE(MAX(seq), 0) AS head FROM event_log")
        .fetch_one(pool)
        .await?;
    Ok(row.try_get("head")?)
}

/// The committed position of `consumer` on a stream partition (0 when never committed).
pub async fn position(
    pool: &Pool,
    consumer: &str,
    stream: &str,
    partition: i64,
) -> Result<i64, StoreError> {
    let row = db::query(
        "SELECT position FROM consumer_positions WHERE consumer = $1 AND topic = $2 AND partition = $3",
    )
    .bind(consumer)
    .bind(stream)
    .bind(partition)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        Some(row) => row.try_get("position")?,
        None => 0,
    })
}

/// Moves a consumer position from `from` to `to` inside the caller's transaction.
///
/// Compare-and-set: when another process moved the position since `from` was read (a second
/// daemon on the same database), nothing is written and [`StoreError::PositionMoved`] tells the
/// caller to roll back its batch, so no event is applied twice.
pub async fn advance_position(
    connection: &mut Conn<'_>,
    consumer: &str,
    stream: &str,
    partition: i64,
    from: i64,
    to: i64,
) -> Result<(), StoreError> {
    let updated = db::query(
        "UPDATE consumer_positions SET position = $1, updated_at = $2 \
         WHERE consumer = $3 AND topic = $4 AND partition = $5 AND position = $6",
    )
    .bind(to)
    .bind(now_rfc3339())
    .bind(consumer)
    .bind(stream)
    .bind(partition)
    .bind(from)
    .execute(&mut *connection)
    .await?;
    if updated.rows_affected() == 1 {
        return Ok(());
    }
    if from == 0 {
        let inserted = db::query(
            "INSERT INTO consumer_positions (consumer, topic, partition, position, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (consumer, topic, partition) DO NOTHING",
        )
        .bind(consumer)
        .bind(stream)
        .bind(partition)
        .bind(to)
        .bind(now_rfc3339())
        .execute(&mut *connection)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(());
        }
    }
    Err(StoreError::PositionMoved {
        consumer: consumer.to_owned(),
        expected: from,
    })
}

/// Records that this database handled `event_id` (by `consumer`), inside the caller's
/// transaction. False when it already had: Kafka may deliver an event twice (the relay
/// publishes at least once), and an event may have gone through the other bus before a switch.
/// Keyed by event id alone, so a renamed consumer group does not apply history again.
pub async fn claim_event(
    connection: &mut Conn<'_>,
    consumer: &str,
    event_id: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = db::query(
        "INSERT INTO consumed_events (consumer, event_id, consumed_at) VALUES ($1, $2, $3) \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id)
    .bind(now_rfc3339())
    .execute(connection)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Claims rows per statement: 3 parameters each, within every database's parameter limits.
const CLAIM_CHUNK: usize = 300;

/// [`claim_event`] for a whole batch, one round trip per 300 events: returns the ids this call
/// claimed. An id missing from the result was handled before (or appears twice in `event_ids`,
/// and is returned once).
pub async fn claim_events(
    connection: &mut Conn<'_>,
    consumer: &str,
    event_ids: &[&str],
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let consumed_at = now_rfc3339();
    let mut claimed = std::collections::HashSet::with_capacity(event_ids.len());
    for chunk in event_ids.chunks(CLAIM_CHUNK) {
        let sql = format!(
            "INSERT INTO consumed_events (consumer, event_id, consumed_at) VALUES {} \
             ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            placeholder_rows(chunk.len(), 3)
        );
        let mut query = db::query(&sql);
        for event_id in chunk {
            query = query
                .bind(consumer)
                .bind(*event_id)
                .bind(consumed_at.as_str());
        }
        for row in query.fetch_all(&mut *connection).await? {
            claimed.insert(row.try_get::<String, _>(0)?);
        }
    }
    Ok(claimed)
}

/// Gives back claims taken by [`claim_events`] for events the batch then did not apply (the
/// batch stopped before them for a retry); they are claimed again when they are applied.
pub async fn release_claims(
    connection: &mut Conn<'_>,
    event_ids: &[&str],
) -> Result<(), sqlx::Error> {
    for chunk in event_ids.chunks(CLAIM_CHUNK) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "DELETE FROM consumed_events WHERE event_id IN ({})",
            placeholders.join(", ")
        );
        let mut query = db::query(&sql);
        for event_id in chunk {
            query = query.bind(*event_id);
        }
        query.execute(&mut *connection).await?;
    }
    Ok(())
}
