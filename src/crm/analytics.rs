//! Event counts kept by the analytics route (flow 9) in `analytics_daily`.

use crate::store::db::{self, Pool};
use serde::{Deserialize, Serialize};

use super::CrmError;

/// Events of one type on one topic, over all days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all(serialize = "camelCase", deserialize = "snake_case"))]
#[schema(rename_all = "camelCase")]
pub struct EventCount {
    /// Topic.
    pub topic: String,
    /// Event type.
    pub event_type: String,
    /// How many.
    pub count: i64,
}

crate::record_from_row!(EventCount {
    topic,
    event_type,
    count
});

/// Events of one type on one topic on one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all(serialize = "camelCase", deserialize = "snake_case"))]
#[schema(rename_all = "camelCase")]
pub struct DailyCount {
    /// `YYYY-MM-DD`.
    #[serde(rename(deserialize = "day"))]
    pub date: String,
    /// Topic.
    pub topic: String,
    /// Event type.
    pub event_type: String,
    /// How many.
    pub count: i64,
}

impl crate::store::db::FromRow for DailyCount {
    fn from_row(row: &crate::store::db::Row) -> Result<Self, sqlx::Error> {
        Ok(Self {
            date: row.try_get("day")?,
            topic: row.try_get("topic")?,
            event_type: row.try_get("event_type")?,
            count: row.try_get("count")?,
        })
    }
}

/// Totals per topic and type, and per day for the last `days` days (newest first).
pub async fn summary(
    pool: &Pool,
    days: i64,
) -> Result<(Vec<EventCount>, Vec<DailyCount>), CrmError> {
    let totals = db::query(
        "SELECT topic, event_type, CAST(SUM(count) AS BIGINT) AS count FROM analytics_daily \
         GROUP BY topic, event_type ORDER BY topic, event_type",
    )
    .fetch_all_as(pool)
    .await?;
    let since = (chrono::Utc::now() - chrono::Duration::days(days - 1))
        .format("%Y-%m-%d")
        .to_string();
    let daily = db::query(
        "SELECT day, topic, event_type, count FROM analytics_daily WHERE day >= $1 \
         ORDER BY day DESC, topic, event_type",
    )
    .bind(since)
    .fetch_all_as(pool)
    .await?;
    Ok((totals, daily))
}
