//! `GET /api/analytics/summary`.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::answer::Answer;
use crate::api::current_user::CurrentUser;
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::crm::analytics::{self, DailyCount, EventCount};

/// Days of daily counts returned.
const DAYS: i64 = 30;

/// Event counts kept by the analytics route.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Summary {
    /// Totals per topic and event type.
    pub events: Vec<EventCount>,
    /// Counts per day (last 30 days, newest first), topic and event type.
    pub daily: Vec<DailyCount>,
}

/// Event counts by type and by day. Counts are aggregates, so every signed-in user may read them.
#[utoipa::path(get, path = "/api/analytics/summary", tag = "analytics", security(("bearer" = [])),
    responses((status = 200, body = Answer<Summary>), (status = 401)))]
pub async fn summary(
    State(state): State<AppState>,
    _caller: CurrentUser,
) -> Result<Answer<Summary>, ApiError> {
    let (events, daily) = analytics::summary(state.store.reader(), DAYS).await?;
    Ok(Answer::new(Summary { events, daily }))
}
