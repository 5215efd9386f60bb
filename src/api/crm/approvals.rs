//! `/api/approvals`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use utoipa::ToSchema;

use super::ApiQuery;
use crate::api::answer::Answer;
use crate::api::current_user::CurrentUser;
use crate::api::error::ApiError;
use crate::api::json::{self, ApiJson};
use crate::api::listing::{ListBody, Listed, PageParams};
use crate::api::path::ApiPath;
use crate::api::AppState;
use crate::crm::approvals::{self, Approval, ApprovalRequest, Decision};
use crate::crm::Published;

/// A new approval request.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalBody {
    /// What is asked (required; `productName` is the original CRM's name for it).
    #[serde(alias = "productName")]
    pub title: Option<String>,
    /// The opportunity it is about (must be visible to the caller).
    pub opportunity_id: Option<String>,
    /// The customer (default: the opportunity's).
    pub customer_id: Option<String>,
    /// Amount at stake.
    pub amount: Option<f64>,
    /// The requester's note (a decider's comment replaces it).
    pub comment: Option<String>,
}

/// A decision's optional comment.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionBody {
    /// Shown to the requester.
    pub comment: Option<String>,
}

/// A decision as the original CRM's `PUT /api/approvals/{id}` takes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionUpdate {
    /// APPROVED or REJECTED.
    pub status: String,
    /// Shown to the requester.
    pub comment: Option<String>,
}

/// Filters of `GET /api/approvals`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ApprovalListParams {
    /// Only requests in this status.
    pub status: Option<String>,
}

/// Requests the caller may see (their own; managers and admins see all), newest first.
#[utoipa::path(get, path = "/api/approvals", tag = "approvals", security(("bearer" = [])),
    params(PageParams, ApprovalListParams),
    responses((status = 200, body = ListBody<Approval>, headers(("x-total-count" = i64))), (status = 400), (status = 401)))]
pub async fn list(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiQuery(asked): ApiQuery<PageParams>,
    ApiQuery(params): ApiQuery<ApprovalListParams>,
) -> Result<Listed<Approval>, ApiError> {
    let paging = asked.paging()?;
    let page = approvals::list(
        state.store.reader(),
        &caller.viewer,
        params.status.as_deref(),
        paging,
    )
    .await?;
    Ok(Listed::new(page, paging))
}

/// Files a request; emits `APPROVAL_REQUESTED` (every MANAGER, COMPLIANCE and ADMIN user is
/// notified).
#[utoipa::path(post, path = "/api/approvals", tag = "approvals", security(("bearer" = [])),
    request_body = ApprovalBody,
    responses((status = 201, body = Answer<Approval>), (status = 400), (status = 401)))]
pub async fn create(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiJson(body): ApiJson<ApprovalBody>,
) -> Result<(StatusCode, Answer<Approval>), ApiError> {
    let request = ApprovalRequest {
        title: body.title,
        opportunity_id: body.opportunity_id,
        customer_id: body.customer_id,
        amount: body.amount,
        comment: body.comment,
    };
    approvals::validate(&request)?;
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    let approval =
        approvals::create(&mut transaction, &mut published, &caller.viewer, &request).await?;
    state.commit(transaction, published).await?;
    Ok((StatusCode::CREATED, Answer::new(approval)))
}

/// The body is optional: empty means no comment. A body that is there is read like every other
/// JSON body (`ApiJson`): JSON content type, no NUL, our error format.
fn decision_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<DecisionBody, ApiError> {
    let body = body.map_err(json::unreadable)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecisionBody::default());
    }
    if !json::is_json(headers) {
        return Err(json::not_json());
    }
    json::parse(&body)
}

async fn decide(
    state: AppState,
    caller: CurrentUser,
    id: String,
    decision: Decision,
    comment: Option<String>,
) -> Result<Answer<Approval>, ApiError> {
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
    Ok(Answer::new(approval))
}

/// Approves a pending request (MANAGER/ADMIN, not one's own); emits `APPROVAL_APPROVED`.
#[utoipa::path(post, path = "/api/approvals/{id}/approve", tag = "approvals", security(("bearer" = [])),
    params(("id" = String, Path)), request_body(content = Option<DecisionBody>),
    responses((status = 200, body = Answer<Approval>), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn approve(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Answer<Approval>, ApiError> {
    let comment = decision_body(&headers, body)?.comment;
    decide(state, caller, id, Decision::Approve, comment).await
}

/// Rejects a pending request (MANAGER/ADMIN, not one's own); emits `APPROVAL_REJECTED`.
#[utoipa::path(post, path = "/api/approvals/{id}/reject", tag = "approvals", security(("bearer" = [])),
    params(("id" = String, Path)), request_body(content = Option<DecisionBody>),
    responses((status = 200, body = Answer<Approval>), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn reject(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Answer<Approval>, ApiError> {
    let comment = decision_body(&headers, body)?.comment;
    decide(state, caller, id, Decision::Reject, comment).await
}

/// One visible request.
#[utoipa::path(get, path = "/api/approvals/{id}", tag = "approvals", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Answer<Approval>), (status = 401), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Answer<Approval>, ApiError> {
    let mut connection = state.store.reader().acquire().await?;
    Ok(Answer::new(
        approvals::get(&mut connection, &caller.viewer, &id).await?,
    ))
}

/// Decides a pending request, the original CRM's way: `{"status": "APPROVED" | "REJECTED",
/// "comment"?}`, under the same rules as `POST …/approve` and `…/reject`.
#[utoipa::path(put, path = "/api/approvals/{id}", tag = "approvals", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = DecisionUpdate,
    responses((status = 200, body = Answer<Approval>), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn update(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DecisionUpdate>,
) -> Result<Answer<Approval>, ApiError> {
    let decision = match body.status.as_str() {
        "APPROVED" => Decision::Approve,
        "REJECTED" => Decision::Reject,
        _ => {
            return Err(ApiError::BadRequest {
                message: "invalid request: status: must be APPROVED or REJECTED".into(),
                fields: vec![crate::api::error::FieldError {
                    field: "status".into(),
                    message: "must be APPROVED or REJECTED".into(),
                }],
            })
        }
    };
    decide(state, caller, id, decision, body.comment).await
}

/// Withdraws one's own pending request; emits `APPROVAL_RECALLED`.
#[utoipa::path(post, path = "/api/approvals/{id}/recall", tag = "approvals", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Answer<Approval>), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn recall(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Answer<Approval>, ApiError> {
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    let approval = approvals::recall(&mut transaction, &mut published, &caller.viewer, &id).await?;
    state.commit(transaction, published).await?;
    Ok(Answer::new(approval))
}

#[cfg(test)]
mod tests {
    use axum::http::header::CONTENT_TYPE;

    use super::*;

    fn read(content_type: Option<&str>, body: &'static [u8]) -> Result<DecisionBody, ApiError> {
        let mut headers = HeaderMap::new();
        if let Some(content_type) = content_type {
            headers.insert(CONTENT_TYPE, content_type.parse().unwrap());
        }
        decision_body(&headers, Ok(Bytes::from_static(body)))
    }

    #[test]
    fn decision_bodies_are_optional_and_otherwise_read_like_every_json_body() {
        for empty in [&b""[..], b" \r\n"] {
            assert!(read(None, empty).unwrap().comment.is_none());
        }
        let json = Some("application/json");
        let comment = read(json, br#"{"comment": "fine"}"#).unwrap().comment;
        assert_eq!(comment.as_deref(), Some("fine"));

        // SQLite would store NUL where PostgreSQL refuses it: refused before either sees it.
        let nul = read(json, br#"{"comment": "a\u0000b"}"#).unwrap_err();
        assert!(matches!(nul, ApiError::BadRequest { .. }), "{nul:?}");
        assert_eq!(nul.to_string(), json::NUL_REFUSED);
        let plain = read(Some("text/plain"), br#"{"comment": "fine"}"#).unwrap_err();
        assert!(
            matches!(plain, ApiError::UnsupportedMediaType(_)),
            "{plain:?}"
        );
        let malformed = read(json, br#"{"comment": "#).unwrap_err();
        assert!(
            malformed.to_string().starts_with("malformed JSON"),
            "{malformed:?}"
        );
        let unknown = read(json, br#"{"status": "APPROVED"}"#).unwrap_err();
        assert!(unknown.to_string().contains("status"), "{unknown:?}");
    }
}
