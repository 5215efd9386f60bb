//! `/api/notifications`: only ever the caller's own.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiQuery;
use crate::api::answer::Answer;
use crate::api::current_user::CurrentUser;
use crate::api::error::{ApiError, FieldError};
use crate::api::listing::{ListBody, Listed, PageParams};
use crate::api::path::ApiPath;
use crate::api::AppState;
use crate::crm::notifications::{self, Notification};

/// Filters of `GET /api/notifications`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct NotificationListParams {
    /// Only unread notifications.
    pub unread: Option<bool>,
    /// Only read (`true`) or unread (`false`) notifications: the original CRM's filter.
    pub is_read: Option<bool>,
}

impl NotificationListParams {
    /// Which notifications to list by read state; `None` for all.
    fn read(&self) -> Result<Option<bool>, ApiError> {
        match (self.unread, self.is_read) {
            (Some(true), Some(true)) => Err(ApiError::BadRequest {
                message: "invalid request: unread=true and isRead=true contradict".into(),
                fields: vec![FieldError {
                    field: "isRead".into(),
                    message: "contradicts unread=true".into(),
                }],
            }),
            (Some(true), _) => Ok(Some(false)),
            (_, is_read) => Ok(is_read),
        }
    }
}

/// How many of the caller's notifications are unread.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnreadCount {
    /// Unread notifications.
    pub count: i64,
}

/// How many notifications changed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReadAll {
    /// Notifications newly marked read.
    pub updated: u64,
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/api/notifications", tag = "notifications", security(("bearer" = [])),
    params(PageParams, NotificationListParams),
    responses((status = 200, body = ListBody<Notification>, headers(("x-total-count" = i64))), (status = 401)))]
pub async fn list(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiQuery(asked): ApiQuery<PageParams>,
    ApiQuery(params): ApiQuery<NotificationListParams>,
) -> Result<Listed<Notification>, ApiError> {
    let paging = asked.paging()?;
    let page =
        notifications::list(state.store.reader(), &caller.viewer, params.read()?, paging).await?;
    Ok(Listed::new(page, paging))
}

/// How many of the caller's notifications are unread.
#[utoipa::path(get, path = "/api/notifications/unread-count", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = Answer<UnreadCount>), (status = 401)))]
pub async fn unread_count(
    State(state): State<AppState>,
    caller: CurrentUser,
) -> Result<Answer<UnreadCount>, ApiError> {
    let count = notifications::unread_count(state.store.reader(), &caller.viewer).await?;
    Ok(Answer::new(UnreadCount { count }))
}

/// Deletes one of the caller's notifications.
#[utoipa::path(delete, path = "/api/notifications/{id}", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401), (status = 404)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let mut transaction = state.store.begin().await?;
    notifications::delete(&mut transaction, &caller.viewer, &id).await?;
    transaction.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/notifications/{id}/read`, the original CRM's method for [`read`]. A handler of
/// its own so that each operation keeps an `operationId` of its own, as OpenAPI requires.
#[utoipa::path(put, path = "/api/notifications/{id}/read", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Answer<Notification>), (status = 401), (status = 404)))]
pub async fn read_put(
    state: State<AppState>,
    caller: CurrentUser,
    id: ApiPath<String>,
) -> Result<Answer<Notification>, ApiError> {
    read(state, caller, id).await
}

/// `PUT /api/notifications/read-all`, the original CRM's method for [`read_all`].
#[utoipa::path(put, path = "/api/notifications/read-all", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = Answer<ReadAll>), (status = 401)))]
pub async fn read_all_put(
    state: State<AppState>,
    caller: CurrentUser,
) -> Result<Answer<ReadAll>, ApiError> {
    read_all(state, caller).await
}

/// Marks one of the caller's notifications read.
#[utoipa::path(post, path = "/api/notifications/{id}/read", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Answer<Notification>), (status = 401), (status = 404)))]
pub async fn read(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Answer<Notification>, ApiError> {
    let mut transaction = state.store.begin().await?;
    let notification = notifications::mark_read(&mut transaction, &caller.viewer, &id).await?;
    transaction.commit().await?;
    Ok(Answer::new(notification))
}

/// Marks all of the caller's notifications read.
#[utoipa::path(post, path = "/api/notifications/read-all", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = Answer<ReadAll>), (status = 401)))]
pub async fn read_all(
    State(state): State<AppState>,
    caller: CurrentUser,
) -> Result<Answer<ReadAll>, ApiError> {
    let mut transaction = state.store.begin().await?;
    let updated = notifications::mark_all_read(&mut transaction, &caller.viewer).await?;
    transaction.commit().await?;
    Ok(Answer::new(ReadAll { updated }))
}
