//! `/api/notifications`: only ever the caller's own.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiQuery, Listed, PageParams};
use crate::api::current_user::CurrentUser;
use crate::api::error::ApiError;
use crate::api::path::ApiPath;
use crate::api::AppState;
use crate::crm::notifications::{self, Notification};

/// Filters of `GET /api/notifications`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationListParams {
    /// Only unread notifications.
    pub unread: Option<bool>,
    /// Rows per page (default 50, at most 500).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

/// How many notifications changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadAll {
    /// Notifications newly marked read.
    pub updated: u64,
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/api/notifications", tag = "notifications", security(("bearer" = [])),
    params(NotificationListParams),
    responses((status = 200, body = Vec<Notification>, headers(("x-total-count" = i64))), (status = 401)))]
pub async fn list(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiQuery(params): ApiQuery<NotificationListParams>,
) -> Result<Listed<Notification>, ApiError> {
    let paging = PageParams {
        limit: params.limit,
        offset: params.offset,
    }
    .paging()?;
    let page = notifications::list(
        state.store.reader(),
        &caller.viewer,
        params.unread.unwrap_or(false),
        paging,
    )
    .await?;
    Ok(Listed(page))
}

/// Marks one of the caller's notifications read.
#[utoipa::path(post, path = "/api/notifications/{id}/read", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Notification), (status = 401), (status = 404)))]
pub async fn read(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Notification>, ApiError> {
    let mut transaction = state.store.begin().await?;
    let notification = notifications::mark_read(&mut transaction, &caller.viewer, &id).await?;
    transaction.commit().await?;
    Ok(Json(notification))
}

/// Marks all of the caller's notifications read.
#[utoipa::path(post, path = "/api/notifications/read-all", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = ReadAll), (status = 401)))]
pub async fn read_all(
    State(state): State<AppState>,
    caller: CurrentUser,
) -> Result<Json<ReadAll>, ApiError> {
    let mut transaction = state.store.begin().await?;
    let updated = notifications::mark_all_read(&mut transaction, &caller.viewer).await?;
    transaction.commit().await?;
    Ok(Json(ReadAll { updated }))
}
