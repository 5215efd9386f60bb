//! Event counts kept by the analytics route (flow 9) in `analytics_daily`.

use serde::{Deserialize, Serialize};
use sqlx::AnyPool;

use super::{from_row, CrmError};

/// Events of one type on one topic, over all days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all(serialize = "camelCase", deserialize = "snake_case"))]
pub struct EventCount {
    /// Topic.
    pub topic: String,
    /// Event type.
    pub event_type: String,
    /// How many.
    pub count: i64,
}

/// Events of one type on one topic on one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all(serialize = "camelCase", deserialize = "snake_case"))]
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

/// Totals per topic and type, and per day for the last `days` days (newest first).
pub async fn summary(
    pool: &AnyPool,
    days: i64,
) -> Result<(Vec<EventCount>, Vec<DailyCount>), CrmError> {
    let totals = sqlx::query(
        "SELECT topic, event_type, CAST(SUM(count) AS BIGINT) AS count FROM analytics_daily \
         GROUP BY topic, event_type ORDER BY topic, event_type",
    )
    .fetch_all(pool)
    .await?
    .iter()
    .map(from_row)
    .collect::<Result<_, _>>()?;
    let since = (chrono::Utc::now() - chrono::Duration::days(days - 1))
        .format("%Y-%m-%d")
        .to_string();
    let daily = sqlx::query(
        "SELECT day, topic, event_type, count FROM analytics_daily WHERE day >= $1 \
         ORDER BY day DESC, topic, event_type",
    )
    .bind(since)
    .fetch_all(pool)
    .await?
    .iter()
    .map(from_row)
    .collect::<Result<_, _>>()?;
    Ok((totals, daily))
}
