//! `/api/audit`: the audit log, for ADMIN and COMPLIANCE users.

use axum::extract::State;
use serde::Deserialize;

use super::ApiQuery;
use crate::api::answer::Answer;
use crate::api::current_user::CurrentUser;
use crate::api::error::ApiError;
use crate::api::listing::{ListBody, Listed, PageParams};
use crate::api::path::ApiPath;
use crate::api::AppState;
use crate::crm::audit::{self, AuditEntry, AuditFilter};

/// Filters of `GET /api/audit`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AuditListParams {
    /// Only this user's actions.
    pub user_id: Option<String>,
    /// Only this action: CREATE, UPDATE, DELETE, LOGIN or LOGOUT.
    pub action: Option<String>,
    /// Only this kind of record: User, Customer, Task, Meeting or ApprovalRequest.
    pub resource_type: Option<String>,
    /// The same as `resourceType` (the original CRM's frontend sends this name).
    pub entity: Option<String>,
    /// Only this record.
    pub resource_id: Option<String>,
    /// Only entries at or after this time (RFC 3339 or YYYY-MM-DD).
    pub start_date: Option<String>,
    /// Only entries at or before this time (RFC 3339, or YYYY-MM-DD for the whole day).
    pub end_date: Option<String>,
}

/// The audit log, newest first: logins, logouts, and the changes people made to users,
/// customers, tasks, meetings and approval requests.
#[utoipa::path(get, path = "/api/audit", tag = "audit", security(("bearer" = [])),
    params(PageParams, AuditListParams),
    responses((status = 200, body = ListBody<AuditEntry>, headers(("x-total-count" = i64))),
        (status = 400), (status = 401), (status = 403)))]
pub async fn list(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiQuery(asked): ApiQuery<PageParams>,
    ApiQuery(params): ApiQuery<AuditListParams>,
) -> Result<Listed<AuditEntry>, ApiError> {
    let paging = asked.paging()?;
    if params.resource_type.is_some() && params.entity.is_some() {
        return Err(ApiError::bad_request(
            "send resourceType or entity, not both (they are the same filter)",
        ));
    }
    let filter = AuditFilter {
        user_id: params.user_id,
        action: params.action,
        resource_type: params.resource_type.or(params.entity),
        resource_id: params.resource_id,
        start_date: params.start_date,
        end_date: params.end_date,
    };
    let page = audit::list(state.store.reader(), &caller.viewer, &filter, paging).await?;
    Ok(Listed::new(page, paging))
}

/// One audit entry.
#[utoipa::path(get, path = "/api/audit/{id}", tag = "audit", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Answer<AuditEntry>), (status = 401), (status = 403), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Answer<AuditEntry>, ApiError> {
    let mut connection = state.store.reader().acquire().await?;
    Ok(Answer::new(
        audit::get(&mut connection, &caller.viewer, &id).await?,
    ))
}
