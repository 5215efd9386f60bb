//! `/api/tasks`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{nullable, ApiQuery};
use crate::api::answer::Answer;
use crate::api::current_user::CurrentUser;
use crate::api::error::ApiError;
use crate::api::json::ApiJson;
use crate::api::listing::{ListBody, Listed, PageParams};
use crate::api::path::ApiPath;
use crate::api::AppState;
use crate::crm::tasks::{self, DueWindow, Task, TaskFields, TaskFilter};
use crate::crm::Published;

/// A new task, or the fields to change (absent fields stay as they are; `null` clears).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskBody {
    /// Title (required on create).
    pub title: Option<String>,
    /// Details.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// The customer it is about.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub customer_id: Option<Option<String>>,
    /// Who does it (default: the caller).
    pub assignee_id: Option<String>,
    /// Due, RFC 3339 or YYYY-MM-DD.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub due_date: Option<Option<String>>,
    /// TODO (default), IN_PROGRESS, COMPLETED or CANCELLED. COMPLETED emits TASK_COMPLETED.
    pub status: Option<String>,
    /// LOW, MEDIUM (default), HIGH or URGENT.
    pub priority: Option<String>,
}

impl From<TaskBody> for TaskFields {
    fn from(body: TaskBody) -> Self {
        Self {
            title: body.title,
            description: body.description,
            customer_id: body.customer_id,
            assignee_id: body.assignee_id,
            due_date: body.due_date,
            status: body.status,
            priority: body.priority,
        }
    }
}

/// Filters of `GET /api/tasks`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct TaskListParams {
    /// Only tasks of this customer.
    pub customer_id: Option<String>,
    /// Only tasks assigned to this user.
    pub assignee_id: Option<String>,
    /// Only tasks in this status.
    pub status: Option<String>,
}

/// Tasks the caller may see (assigned to them, or about their customers), newest first.
#[utoipa::path(get, path = "/api/tasks", tag = "tasks", security(("bearer" = [])),
    params(PageParams, TaskListParams),
    responses((status = 200, body = ListBody<Task>, headers(("x-total-count" = i64))), (status = 400), (status = 401)))]
pub async fn list(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiQuery(asked): ApiQuery<PageParams>,
    ApiQuery(params): ApiQuery<TaskListParams>,
) -> Result<Listed<Task>, ApiError> {
    let paging = asked.paging()?;
    let filter = TaskFilter {
        customer_id: params.customer_id,
        assignee_id: params.assignee_id,
        status: params.status,
        due: None,
    };
    let page = tasks::list(state.store.reader(), &caller.viewer, &filter, paging).await?;
    Ok(Listed::new(page, paging))
}

/// The caller's visible open tasks in a window of due dates, soonest first.
async fn due_in(
    state: &AppState,
    caller: &CurrentUser,
    asked: PageParams,
    window: DueWindow,
) -> Result<Listed<Task>, ApiError> {
    let paging = asked.paging()?;
    let filter = TaskFilter {
        due: Some(window),
        ..TaskFilter::default()
    };
    let page = tasks::list(state.store.reader(), &caller.viewer, &filter, paging).await?;
    Ok(Listed::new(page, paging))
}

/// Open tasks (neither COMPLETED nor CANCELLED) the caller may see whose due date has passed,
/// soonest first.
#[utoipa::path(get, path = "/api/tasks/overdue", tag = "tasks", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, body = ListBody<Task>, headers(("x-total-count" = i64))), (status = 400), (status = 401)))]
pub async fn overdue(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiQuery(asked): ApiQuery<PageParams>,
) -> Result<Listed<Task>, ApiError> {
    due_in(&state, &caller, asked, DueWindow::overdue()).await
}

/// Open tasks the caller may see due from the start of today (UTC) to the end of the third
/// day after it, soonest first.
#[utoipa::path(get, path = "/api/tasks/upcoming", tag = "tasks", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, body = ListBody<Task>, headers(("x-total-count" = i64))), (status = 400), (status = 401)))]
pub async fn upcoming(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiQuery(asked): ApiQuery<PageParams>,
) -> Result<Listed<Task>, ApiError> {
    due_in(&state, &caller, asked, DueWindow::upcoming()).await
}

/// Creates a task; emits `TASK_CREATED`.
#[utoipa::path(post, path = "/api/tasks", tag = "tasks", security(("bearer" = [])),
    request_body = TaskBody,
    responses((status = 201, body = Answer<Task>), (status = 400), (status = 401), (status = 403)))]
pub async fn create(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiJson(body): ApiJson<TaskBody>,
) -> Result<(StatusCode, Answer<Task>), ApiError> {
    let fields = TaskFields::from(body);
    tasks::validate(&fields, true)?;
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    let task = tasks::create(&mut transaction, &mut published, &caller.viewer, &fields).await?;
    state.commit(transaction, published).await?;
    Ok((StatusCode::CREATED, Answer::new(task)))
}

/// One task.
#[utoipa::path(get, path = "/api/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Answer<Task>), (status = 401), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Answer<Task>, ApiError> {
    let mut connection = state.store.reader().acquire().await?;
    Ok(Answer::new(
        tasks::get(&mut connection, &caller.viewer, &id).await?,
    ))
}

/// Changes a task; emits `TASK_UPDATED` (and `TASK_COMPLETED` when it becomes COMPLETED).
#[utoipa::path(put, path = "/api/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = TaskBody,
    responses((status = 200, body = Answer<Task>), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn update(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<TaskBody>,
) -> Result<Answer<Task>, ApiError> {
    let fields = TaskFields::from(body);
    tasks::validate(&fields, false)?;
    change(&state, &caller, &id, &fields).await
}

/// Changes a visible task in a transaction of its own.
async fn change(
    state: &AppState,
    caller: &CurrentUser,
    id: &str,
    fields: &TaskFields,
) -> Result<Answer<Task>, ApiError> {
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    let task = tasks::update(&mut transaction, &mut published, &caller.viewer, id, fields).await?;
    state.commit(transaction, published).await?;
    Ok(Answer::new(task))
}

/// Marks a task COMPLETED, as `PUT` with `{"status": "COMPLETED"}` does; emits `TASK_UPDATED`
/// and `TASK_COMPLETED` (unless it already was).
#[utoipa::path(patch, path = "/api/tasks/{id}/complete", tag = "tasks", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Answer<Task>), (status = 401), (status = 403), (status = 404)))]
pub async fn complete(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Answer<Task>, ApiError> {
    let fields = TaskFields {
        status: Some("COMPLETED".into()),
        ..TaskFields::default()
    };
    change(&state, &caller, &id, &fields).await
}

/// `PUT /api/tasks/{id}/complete`, which the original API took as well as `PATCH`. A handler
/// of its own so that each operation keeps an `operationId` of its own, as OpenAPI requires.
#[utoipa::path(put, path = "/api/tasks/{id}/complete", tag = "tasks", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Answer<Task>), (status = 401), (status = 403), (status = 404)))]
pub async fn complete_put(
    state: State<AppState>,
    caller: CurrentUser,
    id: ApiPath<String>,
) -> Result<Answer<Task>, ApiError> {
    complete(state, caller, id).await
}

/// Soft-deletes a task.
#[utoipa::path(delete, path = "/api/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401), (status = 404)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    tasks::delete(&mut transaction, &mut published, &caller.viewer, &id).await?;
    state.commit(transaction, published).await?;
    Ok(StatusCode::NO_CONTENT)
}
