//! `/api/approvals`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{ApiQuery, Listed, PageParams};
use crate::api::current_user::CurrentUser;
use crate::api::error::ApiError;
use crate::api::json::ApiJson;
use crate::api::path::ApiPath;
use crate::api::AppState;
use crate::crm::approvals::{self, Approval, ApprovalRequest, Decision};
use crate::crm::Published;

/// A new approval request.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalBody {
    /// What is asked (required).
    pub title: Option<String>,
    /// The opportunity it is about (must be visible to the caller).
    pub opportunity_id: Option<String>,
    /// The customer (default: the opportunity's).
    pub customer_id: Option<String>,
    /// Amount at stake.
    pub amount: Option<f64>,
}

/// A decision's optional comment.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionBody {
    /// Shown to the requester.
    pub comment: Option<String>,
}

/// Filters of `GET /api/approvals`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalListParams {
    /// Only requests in this status.
    pub status: Option<String>,
    /// Rows per page (default 50, at most 500).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

/// Requests the caller may see (their own; managers and admins see all), newest first.
#[utoipa::path(get, path = "/api/approvals", tag = "approvals", security(("bearer" = [])),
    params(ApprovalListParams),
    responses((status = 200, body = Vec<Approval>, headers(("x-total-count" = i64))), (status = 400), (status = 401)))]
pub async fn list(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiQuery(params): ApiQuery<ApprovalListParams>,
) -> Result<Listed<Approval>, ApiError> {
    let paging = PageParams {
        limit: params.limit,
        offset: params.offset,
    }
    .paging()?;
    let page = approvals::list(
        state.store.reader(),
        &caller.viewer,
        params.status.as_deref(),
        paging,
    )
    .await?;
    Ok(Listed(page))
}

/// Files a request; emits `APPROVAL_REQUESTED` (every manager and admin is notified).
#[utoipa::path(post, path = "/api/approvals", tag = "approvals", security(("bearer" = [])),
    request_body = ApprovalBody,
    responses((status = 201, body = Approval), (status = 400), (status = 401)))]
pub async fn create(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiJson(body): ApiJson<ApprovalBody>,
) -> Result<(StatusCode, Json<Approval>), ApiError> {
    let request = ApprovalRequest {
        title: body.title,
        opportunity_id: body.opportunity_id,
        customer_id: body.customer_id,
        amount: body.amount,
    };
    approvals::validate(&request)?;
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    let approval =
        approvals::create(&mut transaction, &mut published, &caller.viewer, &request).await?;
    state.commit(transaction, published).await?;
    Ok((StatusCode::CREATED, Json(approval)))
}

/// The body is optional: empty means no comment.
fn decision_body(body: Result<Bytes, BytesRejection>) -> Result<DecisionBody, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: crate::api::BODY_LIMIT,
            }
        } else {
            ApiError::bad_request(rejection.body_text())
        }
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecisionBody::default());
    }
    serde_json::from_slice(&body).map_err(|error| ApiError::BadRequest {
        message: format!("invalid request body: {error}"),
        fields: Vec::new(),
    })
}

async fn decide(
    state: AppState,
    caller: CurrentUser,
    id: String,
    decision: Decision,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Approval>, ApiError> {
    let comment = decision_body(body)?.comment;
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    let approval = approvals::decide(
        &mut transaction,
        &mut published,
        &caller.viewer,
        &id,
        decision,
        comment,
    )
    .await?;
    state.commit(transaction, published).await?;
    Ok(Json(approval))
}

/// Approves a pending request (MANAGER/ADMIN, not one's own); emits `APPROVAL_APPROVED`.
#[utoipa::path(post, path = "/api/approvals/{id}/approve", tag = "approvals", security(("bearer" = [])),
    params(("id" = String, Path)), request_body(content = Option<DecisionBody>),
    responses((status = 200, body = Approval), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn approve(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Approval>, ApiError> {
    decide(state, caller, id, Decision::Approve, body).await
}

/// Rejects a pending request (MANAGER/ADMIN, not one's own); emits `APPROVAL_REJECTED`.
#[utoipa::path(post, path = "/api/approvals/{id}/reject", tag = "approvals", security(("bearer" = [])),
    params(("id" = String, Path)), request_body(content = Option<DecisionBody>),
    responses((status = 200, body = Approval), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn reject(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Approval>, ApiError> {
    decide(state, caller, id, Decision::Reject, body).await
}

/// Withdraws one's own pending request; emits `APPROVAL_RECALLED`.
#[utoipa::path(post, path = "/api/approvals/{id}/recall", tag = "approvals", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Approval), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn recall(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Approval>, ApiError> {
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    let approval = approvals::recall(&mut transaction, &mut published, &caller.viewer, &id).await?;
    state.commit(transaction, published).await?;
    Ok(Json(approval))
}
