//! `/api/auth/users`: user administration at the original CRM's paths, under crm-router's
//! rules. ADMIN and COMPLIANCE look up everyone and a MANAGER their team. Only an ADMIN
//! changes or deletes users, and never themselves.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::answer::Answer;
use super::crm::{nullable, ApiQuery};
use super::current_user::CurrentUser;
use super::error::ApiError;
use super::json::ApiJson;
use super::listing::{ListBody, Listed, PageParams};
use super::path::ApiPath;
use super::AppState;
use crate::auth::Role;
use crate::crm::users::{self, User, UserChanges};
use crate::crm::Published;

/// What an ADMIN may change of a user (absent fields stay as they are).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserBody {
    /// Display name.
    pub name: Option<String>,
    /// Role; takes effect at the user's next request.
    pub role: Option<Role>,
    /// Manager (a MANAGER or ADMIN); `null` takes the user out of any team.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub manager_id: Option<Option<String>>,
    /// Whether the user may sign in; `false` ends their sessions at once.
    pub active: Option<bool>,
}

/// Users the caller may look up, newest first.
#[utoipa::path(get, path = "/api/auth/users", tag = "auth", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, body = ListBody<User>, headers(("x-total-count" = i64))), (status = 400), (status = 401), (status = 403)))]
pub async fn list(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiQuery(asked): ApiQuery<PageParams>,
) -> Result<Listed<User>, ApiError> {
    let paging = asked.paging()?;
    let page = users::list(state.store.reader(), &caller.viewer, paging).await?;
    Ok(Listed::new(page, paging))
}

/// One user the caller may look up.
#[utoipa::path(get, path = "/api/auth/users/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Answer<User>), (status = 401), (status = 403), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Answer<User>, ApiError> {
    let mut connection = state.store.reader().acquire().await?;
    Ok(Answer::new(
        users::get(&mut connection, &caller.viewer, &id).await?,
    ))
}

/// Changes a user's name, role, manager or whether they may sign in (ADMIN); emits
/// `USER_UPDATED` with what changed.
#[utoipa::path(put, path = "/api/auth/users/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UserBody,
    responses((status = 200, body = Answer<User>), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 409, description = "an ADMIN deactivating themselves, or the last ADMIN giving up the role")))]
pub async fn update(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UserBody>,
) -> Result<Answer<User>, ApiError> {
    let changes = UserChanges {
        name: body.name,
        role: body.role,
        manager_id: body.manager_id,
        active: body.active,
    };
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    let user = users::update(
        &mut transaction,
        &mut published,
        &caller.viewer,
        &id,
        &changes,
    )
    .await?;
    state.commit(transaction, published).await?;
    Ok(Answer::new(user))
}

/// Deletes a user (ADMIN, never oneself): they can no longer sign in, their tokens end at
/// once, and `USER_DELETED` lets the bundled cascade remove what belongs to them.
#[utoipa::path(delete, path = "/api/auth/users/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    users::delete(&mut transaction, &mut published, &caller.viewer, &id).await?;
    state.commit(transaction, published).await?;
    Ok(StatusCode::NO_CONTENT)
}
