//! `/api/opportunities`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::ApiQuery;
use crate::api::answer::Answer;
use crate::api::current_user::CurrentUser;
use crate::api::error::ApiError;
use crate::api::json::ApiJson;
use crate::api::listing::{ListBody, Listed, PageParams};
use crate::api::path::ApiPath;
use crate::api::AppState;
use crate::crm::opportunities::{self, Opportunity, OpportunityFields};
use crate::crm::Published;

/// A new opportunity, or the fields to change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpportunityBody {
    /// The customer (required on create).
    pub customer_id: Option<String>,
    /// Name (required on create).
    pub name: Option<String>,
    /// Expected value (default 0).
    pub amount: Option<f64>,
    /// PROSPECTING (default), PROPOSAL, NEGOTIATION, WON or LOST.
    pub stage: Option<String>,
    /// Owner (default: the caller).
    pub owner_id: Option<String>,
}

impl From<OpportunityBody> for OpportunityFields {
    fn from(body: OpportunityBody) -> Self {
        Self {
            customer_id: body.customer_id,
            name: body.name,
            amount: body.amount,
            stage: body.stage,
            owner_id: body.owner_id,
        }
    }
}

/// Filters of `GET /api/opportunities`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct OpportunityListParams {
    /// Only opportunities of this customer.
    pub customer_id: Option<String>,
    /// Only opportunities in this stage.
    pub stage: Option<String>,
}

/// Opportunities the caller may see, newest first.
#[utoipa::path(get, path = "/api/opportunities", tag = "opportunities", security(("bearer" = [])),
    params(PageParams, OpportunityListParams),
    responses((status = 200, body = ListBody<Opportunity>, headers(("x-total-count" = i64))), (status = 400), (status = 401)))]
pub async fn list(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiQuery(asked): ApiQuery<PageParams>,
    ApiQuery(params): ApiQuery<OpportunityListParams>,
) -> Result<Listed<Opportunity>, ApiError> {
    let paging = asked.paging()?;
    let page = opportunities::list(
        state.store.reader(),
        &caller.viewer,
        params.customer_id.as_deref(),
        params.stage.as_deref(),
        paging,
    )
    .await?;
    Ok(Listed::new(page, paging))
}

/// Creates an opportunity; emits `OPPORTUNITY_CREATED`.
#[utoipa::path(post, path = "/api/opportunities", tag = "opportunities", security(("bearer" = [])),
    request_body = OpportunityBody,
    responses((status = 201, body = Answer<Opportunity>), (status = 400), (status = 401), (status = 403)))]
pub async fn create(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiJson(body): ApiJson<OpportunityBody>,
) -> Result<(StatusCode, Answer<Opportunity>), ApiError> {
    let fields = OpportunityFields::from(body);
    opportunities::validate(&fields, true)?;
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    let opportunity =
        opportunities::create(&mut transaction, &mut published, &caller.viewer, &fields).await?;
    state.commit(transaction, published).await?;
    Ok((StatusCode::CREATED, Answer::new(opportunity)))
}

/// One opportunity.
#[utoipa::path(get, path = "/api/opportunities/{id}", tag = "opportunities", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Answer<Opportunity>), (status = 401), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Answer<Opportunity>, ApiError> {
    let mut connection = state.store.reader().acquire().await?;
    Ok(Answer::new(
        opportunities::get(&mut connection, &caller.viewer, &id).await?,
    ))
}

/// Changes an opportunity; emits `OPPORTUNITY_UPDATED`.
#[utoipa::path(put, path = "/api/opportunities/{id}", tag = "opportunities", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = OpportunityBody,
    responses((status = 200, body = Answer<Opportunity>), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn update(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<OpportunityBody>,
) -> Result<Answer<Opportunity>, ApiError> {
    let fields = OpportunityFields::from(body);
    opportunities::validate(&fields, false)?;
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    let opportunity = opportunities::update(
        &mut transaction,
        &mut published,
        &caller.viewer,
        &id,
        &fields,
    )
    .await?;
    state.commit(transaction, published).await?;
    Ok(Answer::new(opportunity))
}
