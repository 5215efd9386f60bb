//! `/api/customers`.

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
use crate::crm::customers::{self, Customer, CustomerFields};
use crate::crm::Published;

/// A new customer, or the fields to change (absent fields stay as they are; `null` clears).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomerBody {
    /// Name (required on create).
    pub name: Option<String>,
    /// Email (unique among customers).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// Phone.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// Industry.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub industry: Option<Option<String>>,
    /// SMALL, MEDIUM, LARGE or ENTERPRISE.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub size: Option<Option<String>>,
    /// Postal address.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub address: Option<Option<String>>,
    /// conservative, moderate or aggressive.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub investment_profile: Option<Option<String>>,
    /// A whole number from 1 (lowest) to 10.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub risk_tolerance: Option<Option<i64>>,
    /// Investment experience, in the customer's words.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub investment_experience: Option<Option<String>>,
    /// Owner (default: the caller; others need MANAGER for their team or ADMIN).
    pub owner_id: Option<String>,
}

impl From<CustomerBody> for CustomerFields {
    fn from(body: CustomerBody) -> Self {
        Self {
            name: body.name,
            email: body.email,
            phone: body.phone,
            industry: body.industry,
            size: body.size,
            address: body.address,
            investment_profile: body.investment_profile,
            risk_tolerance: body.risk_tolerance,
            investment_experience: body.investment_experience,
            owner_id: body.owner_id,
        }
    }
}

/// Filters of `GET /api/customers`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct CustomerListParams {
    /// Only customers whose name or email contains this text, in any case.
    pub search: Option<String>,
}

/// Customers the caller may see, newest first.
#[utoipa::path(get, path = "/api/customers", tag = "customers", security(("bearer" = [])),
    params(PageParams, CustomerListParams),
    responses((status = 200, body = ListBody<Customer>, headers(("x-total-count" = i64))), (status = 400), (status = 401)))]
pub async fn list(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiQuery(asked): ApiQuery<PageParams>,
    ApiQuery(params): ApiQuery<CustomerListParams>,
) -> Result<Listed<Customer>, ApiError> {
    let paging = asked.paging()?;
    let page = customers::list(
        state.store.reader(),
        &caller.viewer,
        params.search.as_deref(),
        paging,
    )
    .await?;
    Ok(Listed::new(page, paging))
}

/// Creates a customer; emits `CUSTOMER_CREATED` (a first-contact task and an opportunity follow).
#[utoipa::path(post, path = "/api/customers", tag = "customers", security(("bearer" = [])),
    request_body = CustomerBody,
    responses((status = 201, body = Answer<Customer>), (status = 400), (status = 401), (status = 403), (status = 409)))]
pub async fn create(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiJson(body): ApiJson<CustomerBody>,
) -> Result<(StatusCode, Answer<Customer>), ApiError> {
    let fields = CustomerFields::from(body);
    customers::validate(&fields, true)?;
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    let customer =
        customers::create(&mut transaction, &mut published, &caller.viewer, &fields).await?;
    state.commit(transaction, published).await?;
    Ok((StatusCode::CREATED, Answer::new(customer)))
}

/// One customer.
#[utoipa::path(get, path = "/api/customers/{id}", tag = "customers", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Answer<Customer>), (status = 401), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Answer<Customer>, ApiError> {
    let mut connection = state.store.reader().acquire().await?;
    Ok(Answer::new(
        customers::get(&mut connection, &caller.viewer, &id).await?,
    ))
}

/// Changes a customer; emits `CUSTOMER_UPDATED`.
#[utoipa::path(put, path = "/api/customers/{id}", tag = "customers", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = CustomerBody,
    responses((status = 200, body = Answer<Customer>), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn update(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CustomerBody>,
) -> Result<Answer<Customer>, ApiError> {
    let fields = CustomerFields::from(body);
    customers::validate(&fields, false)?;
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    let customer = customers::update(
        &mut transaction,
        &mut published,
        &caller.viewer,
        &id,
        &fields,
    )
    .await?;
    state.commit(transaction, published).await?;
    Ok(Answer::new(customer))
}

/// Soft-deletes a customer; emits `CUSTOMER_DELETED`.
#[utoipa::path(delete, path = "/api/customers/{id}", tag = "customers", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401), (status = 404)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    customers::delete(&mut transaction, &mut published, &caller.viewer, &id).await?;
    state.commit(transaction, published).await?;
    Ok(StatusCode::NO_CONTENT)
}
