//! The route file format as written by users: plain serde types, no validation beyond shape.
//!
//! `compile.rs` turns these into checked [`crate::route::Route`]s. Every struct denies unknown
//! fields so a typo (`tabel:`) is an error with a location, never a silently ignored key.
//! `schemas/route.schema.json` describes the same format for editors; keep them in step.

use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;

/// One route file: `routes:` followed by a list of routes.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// The routes defined in this file, in order.
    pub routes: Vec<RouteDef>,
}

/// One route: a trigger and the actions it runs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteDef {
    /// Unique name across all route files; used in logs, dead letters and idempotency keys.
    pub name: String,
    /// Free text shown by `crm-router routes` and `/api/routes`.
    #[serde(default)]
    pub description: Option<String>,
    /// When the route runs.
    pub on: TriggerDef,
    /// Retry policy for this route's failures; defaults to the daemon's `retry` setting.
    #[serde(default)]
    pub retry: Option<RetryDef>,
    /// Actions run in order; each sees the results of the earlier ones under `steps`.
    /// Each is a single-key map (`- insert: {...}`), not a YAML tag.
    #[serde(with = "serde_yaml::with::singleton_map_recursive")]
    pub actions: Vec<ActionDef>,
}

/// The `on:` block of a route: `topic` (and `type`) to run on events, or `schedule` to run on
/// a timer. One struct rather than an untagged enum, so that a typo still gets serde's
/// "unknown field, expected one of" message; `load` checks that exactly one of the two is given.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TriggerDef {
    /// Topic name or glob (`*.events`); the route runs for each matching event.
    #[serde(default)]
    pub topic: Option<String>,
    /// Event type, list of types, or `*` (the default). Only with `topic`.
    #[serde(default, rename = "type")]
    pub event_type: Option<TypeSelector>,
    /// An interval (`1m`, `every 30s`) or a 5-field cron expression (`*/5 * * * *`, UTC); the
    /// route runs on this timer instead of on events. `Some(None)` is `schedule:` with no
    /// value, an error rather than "no schedule".
    #[serde(default, deserialize_with = "present")]
    pub schedule: Option<Option<String>>,
    /// A minijinja expression over the event; the route runs only when it is truthy.
    #[serde(default)]
    pub when: Option<String>,
}

/// Deserialises a key that is present (even as `null`) to `Some`; with `#[serde(default)]` an
/// absent key stays `None`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// `type: X` or `type: [X, Y]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TypeSelector {
    /// A single type, or `*` for any.
    One(String),
    /// Any of these types.
    Many(Vec<String>),
}

/// Retry policy as written in a route file or the daemon config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryDef {
    /// Total attempts including the first (1 = no retry).
    pub attempts: u32,
    /// Delay between attempts.
    #[serde(default)]
    pub backoff: Option<BackoffDef>,
    /// Randomise each delay by up to ±50% so retries of many events do not align.
    #[serde(default)]
    pub jitter: Option<bool>,
}

/// Exponential backoff between attempts.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackoffDef {
    /// First delay, e.g. `200ms`.
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    /// Upper bound for any delay, e.g. `10s`.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    /// Factor applied to the delay after each attempt.
    pub multiplier: f64,
}

/// Column name → value template (a string template, a literal, or for `where` a list / operator map).
pub type ValueMap = IndexMap<String, serde_yaml::Value>;

/// One action. Written as a single-key map: `- insert: {...}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionDef {
    /// Insert one row.
    Insert(InsertDef),
    /// Insert one row, or update the row with the same `where` key.
    Upsert(UpsertDef),
    /// Update the rows matching `where`.
    Update(UpdateDef),
    /// Select rows into `steps.<as>`, optionally running nested actions per row.
    Query(QueryDef),
    /// Append an event to a topic, in the same transaction as the other effects.
    Emit(EmitDef),
    /// Call an HTTP endpoint (at-least-once, with an `Idempotency-Key`).
    Http(HttpDef),
}

impl ActionDef {
    /// The action's `when:`.
    pub fn when(&self) -> Option<&str> {
        match self {
            Self::Insert(def) => def.when.as_deref(),
            Self::Upsert(def) => def.when.as_deref(),
            Self::Update(def) => def.when.as_deref(),
            Self::Query(def) => def.when.as_deref(),
            Self::Emit(def) => def.when.as_deref(),
            Self::Http(def) => def.when.as_deref(),
        }
    }

    /// The action's own `retry:`.
    pub fn retry(&self) -> Option<&RetryDef> {
        match self {
            Self::Insert(def) => def.retry.as_ref(),
            Self::Upsert(def) => def.retry.as_ref(),
            Self::Update(def) => def.retry.as_ref(),
            Self::Query(def) => def.retry.as_ref(),
            Self::Emit(def) => def.retry.as_ref(),
            Self::Http(def) => def.retry.as_ref(),
        }
    }
}

/// `insert:`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InsertDef {
    /// Target table.
    pub table: String,
    /// Column → value.
    pub values: ValueMap,
    /// What to do when a unique constraint on `columns` is hit.
    #[serde(default)]
    pub on_conflict: Option<OnConflictDef>,
    /// Expose the inserted row (or `none` when a conflict was ignored) as `steps.<as>`.
    #[serde(default, rename = "as")]
    pub as_name: Option<String>,
    /// Run only when this expression is truthy.
    #[serde(default)]
    pub when: Option<String>,
    /// Retry policy when this action fails, instead of the route's (not on scheduled routes).
    #[serde(default)]
    pub retry: Option<RetryDef>,
}

/// `on_conflict:` of an insert.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OnConflictDef {
    /// Columns of the unique constraint.
    pub columns: Vec<String>,
    /// `ignore` keeps the existing row; `update` overwrites it with the new values.
    #[serde(rename = "do")]
    pub action: ConflictAction,
}

/// What an insert does on conflict.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConflictAction {
    /// `ON CONFLICT DO NOTHING`.
    Ignore,
    /// `ON CONFLICT DO UPDATE SET` every inserted column.
    Update,
}

/// `upsert:`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpsertDef {
    /// Target table.
    pub table: String,
    /// Key columns (a unique constraint) and their values.
    #[serde(rename = "where")]
    pub where_: ValueMap,
    /// Columns written on insert and on update.
    #[serde(default)]
    pub set: ValueMap,
    /// Counters: inserted as the amount, incremented by it on update.
    #[serde(default)]
    pub increment: ValueMap,
    /// Expose the resulting row as `steps.<as>`.
    #[serde(default, rename = "as")]
    pub as_name: Option<String>,
    /// Run only when this expression is truthy.
    #[serde(default)]
    pub when: Option<String>,
    /// Retry policy when this action fails, instead of the route's (not on scheduled routes).
    #[serde(default)]
    pub retry: Option<RetryDef>,
}

/// `update:`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpdateDef {
    /// Target table.
    pub table: String,
    /// Row filter: column → value, list (`IN`) or operator map.
    #[serde(rename = "where")]
    pub where_: ValueMap,
    /// Columns to overwrite.
    #[serde(default)]
    pub set: ValueMap,
    /// Counters to increment by the given amount.
    #[serde(default)]
    pub increment: ValueMap,
    /// Expose the updated rows (a list) as `steps.<as>`.
    #[serde(default, rename = "as")]
    pub as_name: Option<String>,
    /// Run only when this expression is truthy.
    #[serde(default)]
    pub when: Option<String>,
    /// Retry policy when this action fails, instead of the route's (not on scheduled routes).
    #[serde(default)]
    pub retry: Option<RetryDef>,
}

/// `query:`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueryDef {
    /// Table to read.
    pub table: String,
    /// Row filter: column → value, list (`IN`) or operator map.
    #[serde(default, rename = "where")]
    pub where_: ValueMap,
    /// Sort keys: `column` or `column desc`.
    #[serde(default)]
    pub order_by: Vec<String>,
    /// At most this many rows (default 1000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Name under `steps` for the list of rows.
    #[serde(rename = "as")]
    pub as_name: String,
    /// Actions run once per row, with the row as `row`.
    #[serde(default)]
    pub for_each: Option<Vec<ActionDef>>,
    /// Run only when this expression is truthy.
    #[serde(default)]
    pub when: Option<String>,
    /// Retry policy when this action fails, instead of the route's (not on scheduled routes).
    #[serde(default)]
    pub retry: Option<RetryDef>,
}

/// `emit:`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmitDef {
    /// Destination topic (a literal name).
    pub topic: String,
    /// `eventType` of the new event.
    #[serde(rename = "eventType")]
    pub event_type: String,
    /// Entity key template; keeps per-entity order.
    pub key: String,
    /// The event's `data`: a tree whose string leaves are templates.
    #[serde(default)]
    pub data: Option<serde_yaml::Value>,
    /// Expose `{eventId, topic, eventType, key}` of the new event as `steps.<as>`.
    #[serde(default, rename = "as")]
    pub as_name: Option<String>,
    /// Run only when this expression is truthy.
    #[serde(default)]
    pub when: Option<String>,
    /// Retry policy when this action fails, instead of the route's (not on scheduled routes).
    #[serde(default)]
    pub retry: Option<RetryDef>,
}

/// `http:`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpDef {
    /// HTTP method (default `POST`).
    #[serde(default)]
    pub method: Option<String>,
    /// URL template.
    pub url: String,
    /// Header → value template.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// JSON body: a tree whose string leaves are templates.
    #[serde(default)]
    pub body: Option<serde_yaml::Value>,
    /// Per-attempt timeout (default `10s`, at most `30s`).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Status codes that count as success (default: any 2xx).
    #[serde(default)]
    pub success: Option<Vec<u16>>,
    /// Expose `{status, body}` as `steps.<as>`.
    #[serde(default, rename = "as")]
    pub as_name: Option<String>,
    /// Run only when this expression is truthy.
    #[serde(default)]
    pub when: Option<String>,
    /// Retry policy when this action fails, instead of the route's (not on scheduled routes).
    #[serde(default)]
    pub retry: Option<RetryDef>,
}
