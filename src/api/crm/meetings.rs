//! `/api/meetings`.

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
use crate::crm::meetings::{self, Meeting, MeetingFields, MeetingFilter};
use crate::crm::Published;

/// A new meeting, or the fields to change (absent fields stay as they are; `null` clears).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeetingBody {
    /// The customer met (required on create; must be visible to the caller).
    pub customer_id: Option<String>,
    /// The salesperson (default: the caller; others need MANAGER for their team or ADMIN).
    pub sales_id: Option<String>,
    /// When, RFC 3339 or YYYY-MM-DD (required on create).
    pub date: Option<String>,
    /// What was discussed (required on create).
    pub summary: Option<String>,
    /// What happens next.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub next_action: Option<Option<String>>,
    /// When it happens, RFC 3339 or YYYY-MM-DD.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub next_action_date: Option<Option<String>>,
}

impl From<MeetingBody> for MeetingFields {
    fn from(body: MeetingBody) -> Self {
        Self {
            customer_id: body.customer_id,
            sales_id: body.sales_id,
            date: body.date,
            summary: body.summary,
            next_action: body.next_action,
            next_action_date: body.next_action_date,
        }
    }
}

/// Filters of `GET /api/meetings`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct MeetingListParams {
    /// Only meetings with this customer.
    pub customer_id: Option<String>,
    /// Only meetings of this salesperson.
    pub sales_id: Option<String>,
    /// Only meetings at or after this time (RFC 3339 or YYYY-MM-DD).
    pub from: Option<String>,
    /// Only meetings at or before this time (RFC 3339, or YYYY-MM-DD for the whole day).
    pub to: Option<String>,
}

/// Meetings the caller may see (theirs, or with their customers), latest first.
#[utoipa::path(get, path = "/api/meetings", tag = "meetings", security(("bearer" = [])),
    params(PageParams, MeetingListParams),
    responses((status = 200, body = ListBody<Meeting>, headers(("x-total-count" = i64))), (status = 400), (status = 401)))]
pub async fn list(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiQuery(asked): ApiQuery<PageParams>,
    ApiQuery(params): ApiQuery<MeetingListParams>,
) -> Result<Listed<Meeting>, ApiError> {
    let paging = asked.paging()?;
    let filter = MeetingFilter {
        customer_id: params.customer_id,
        sales_id: params.sales_id,
        from: params.from,
        to: params.to,
    };
    let page = meetings::list(state.store.reader(), &caller.viewer, &filter, paging).await?;
    Ok(Listed::new(page, paging))
}

/// Records a meeting; emits `MEETING_CREATED`.
#[utoipa::path(post, path = "/api/meetings", tag = "meetings", security(("bearer" = [])),
    request_body = MeetingBody,
    responses((status = 201, body = Answer<Meeting>), (status = 400), (status = 401), (status = 403)))]
pub async fn create(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiJson(body): ApiJson<MeetingBody>,
) -> Result<(StatusCode, Answer<Meeting>), ApiError> {
    let fields = MeetingFields::from(body);
    meetings::validate(&fields, true)?;
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    let meeting =
        meetings::create(&mut transaction, &mut published, &caller.viewer, &fields).await?;
    state.commit(transaction, published).await?;
    Ok((StatusCode::CREATED, Answer::new(meeting)))
}

/// One meeting.
#[utoipa::path(get, path = "/api/meetings/{id}", tag = "meetings", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Answer<Meeting>), (status = 401), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Answer<Meeting>, ApiError> {
    let mut connection = state.store.reader().acquire().await?;
    Ok(Answer::new(
        meetings::get(&mut connection, &caller.viewer, &id).await?,
    ))
}

/// Changes a meeting; emits `MEETING_UPDATED`. A meeting moved to another time is reminded of
/// again.
#[utoipa::path(put, path = "/api/meetings/{id}", tag = "meetings", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = MeetingBody,
    responses((status = 200, body = Answer<Meeting>), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn update(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<MeetingBody>,
) -> Result<Answer<Meeting>, ApiError> {
    let fields = MeetingFields::from(body);
    meetings::validate(&fields, false)?;
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    let meeting = meetings::update(
        &mut transaction,
        &mut published,
        &caller.viewer,
        &id,
        &fields,
    )
    .await?;
    state.commit(transaction, published).await?;
    Ok(Answer::new(meeting))
}

/// Soft-deletes a meeting; emits `MEETING_DELETED`.
#[utoipa::path(delete, path = "/api/meetings/{id}", tag = "meetings", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    meetings::delete(&mut transaction, &mut published, &caller.viewer, &id).await?;
    state.commit(transaction, published).await?;
    Ok(StatusCode::NO_CONTENT)
}
