//! Approval requests: a user asks, a manager or admin (never the requester) decides.

use crate::store::db::{self, Conn, Pool};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit::{Action, Resource};
use super::reference::{self, Reference};
use super::{fetch_visible, CrmError, Paging, Problems, Published, Viewer};
use crate::store::sql::StatementBuilder;
use crate::template::now_rfc3339;

/// Allowed `status` values.
pub const STATUSES: &[&str] = &["PENDING", "APPROVED", "REJECTED", "RECALLED"];

/// An approval request as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all(serialize = "camelCase", deserialize = "snake_case"))]
#[schema(rename_all = "camelCase")]
pub struct Approval {
    /// Id (UUID).
    pub id: String,
    /// The opportunity it is about.
    pub opportunity_id: Option<String>,
    /// The customer it is about.
    pub customer_id: Option<String>,
    /// Who asked.
    pub requester_id: String,
    /// Who decided.
    pub approver_id: Option<String>,
    /// What is asked.
    pub title: String,
    /// Amount at stake.
    pub amount: Option<f64>,
    /// PENDING, APPROVED, REJECTED or RECALLED.
    pub status: String,
    /// The requester's note, replaced by the decider's comment when the decision has one.
    pub comment: Option<String>,
    /// Requested (RFC 3339).
    pub requested_at: String,
    /// Decided or recalled (RFC 3339).
    pub decided_at: Option<String>,
    /// `title` under the original CRM's name.
    pub product_name: String,
    /// `decidedAt` under the original CRM's name.
    pub processed_at: Option<String>,
    /// The customer it is about, nested (the original CRM's `approval.customer`).
    #[schema(value_type = Option<super::reference::CustomerReference>)]
    pub customer: Option<serde_json::Value>,
    /// Who asked, nested.
    #[schema(value_type = Option<super::reference::UserReference>)]
    pub requester: Option<serde_json::Value>,
    /// Who decided, nested.
    #[schema(value_type = Option<super::reference::UserReference>)]
    pub approver: Option<serde_json::Value>,
}

crate::record_from_row!(Approval {
    id,
    opportunity_id,
    customer_id,
    requester_id,
    approver_id,
    title,
    amount,
    status,
    comment,
    requested_at,
    decided_at,
    product_name,
    processed_at,
    customer,
    requester,
    approver
});

/// A new request.
#[derive(Debug, Clone, Default)]
pub struct ApprovalRequest {
    /// What is asked (required).
    pub title: Option<String>,
    /// Opportunity.
    pub opportunity_id: Option<String>,
    /// Customer.
    pub customer_id: Option<String>,
    /// Amount.
    pub amount: Option<f64>,
    /// The requester's note.
    pub comment: Option<String>,
}

/// A decision on a pending request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// APPROVED.
    Approve,
    /// REJECTED.
    Reject,
}

/// The columns a record is read from, in the order of [`FIELDS`].
pub(crate) const COLUMNS: &str = "id, opportunity_id, customer_id, requester_id, approver_id, title, amount, status, comment, requested_at, decided_at";

/// How a approval appears in a list the database renders (as `Approval` serialises).
pub(crate) const FIELDS: &[super::JsonField] = &[
    super::field("id", "id"),
    super::field("opportunityId", "opportunity_id"),
    super::field("customerId", "customer_id"),
    super::field("requesterId", "requester_id"),
    super::field("approverId", "approver_id"),
    super::field("title", "title"),
    super::float("amount", "amount"),
    super::field("status", "status"),
    super::field("comment", "comment"),
    super::field("requestedAt", "requested_at"),
    super::field("decidedAt", "decided_at"),
    super::field("productName", "product_name"),
    super::field("processedAt", "processed_at"),
    super::json("customer", "customer"),
    super::json("requester", "requester"),
    super::json("approver", "approver"),
];

/// The columns an approval is read with beyond its own: the original CRM's names for two.
const ALIASES: &str = "title AS product_name, decided_at AS processed_at";

/// The records an approval nests.
const REFERENCES: &[Reference] = &[
    Reference {
        alias: "customer",
        table: "customers",
        pointer: "approvals.customer_id",
        keys: reference::CUSTOMER_KEYS,
    },
    Reference {
        alias: "requester",
        table: "users",
        pointer: "approvals.requester_id",
        keys: reference::USER_KEYS,
    },
    Reference {
        alias: "approver",
        table: "users",
        pointer: "approvals.approver_id",
        keys: reference::USER_KEYS,
    },
];

/// An approval's `SELECT` list on `dialect`: its columns, their aliases and what it nests.
pub(crate) fn selected(dialect: crate::store::Dialect) -> String {
    reference::selected(&format!("{COLUMNS}, {ALIASES}"), REFERENCES, dialect)
}

impl super::Record for Approval {
    const TABLE: &'static str = "approvals";
    const WHAT: &'static str = "approval";

    fn selected(dialect: crate::store::Dialect) -> String {
        selected(dialect)
    }
}

fn event_data(approval: &Approval) -> serde_json::Value {
    json!({
        "approvalId": approval.id,
        "opportunityId": approval.opportunity_id,
        "customerId": approval.customer_id,
        "requesterId": approval.requester_id,
        "title": approval.title,
        "amount": approval.amount,
    })
}

/// Checks a request before the transaction starts (for 400s).
pub fn validate(request: &ApprovalRequest) -> Result<(), CrmError> {
    let mut problems = Problems::default();
    match &request.title {
        Some(title) => {
            problems.text("title", title, 300);
        }
        None => problems.add("title", "is required"),
    }
    if let Some(amount) = request.amount {
        problems.amount("amount", amount);
    }
    problems.optional_text("comment", request.comment.as_deref(), 2000);
    problems.into_result()
}

/// Files a request by the viewer and announces `APPROVAL_REQUESTED`. A linked opportunity must
/// be visible to the viewer; its customer is filled in when not given.
pub async fn create(
    connection: &mut Conn<'_>,
    published: &mut Published,
    viewer: &Viewer,
    request: &ApprovalRequest,
) -> Result<Approval, CrmError> {
    viewer.require_changes()?;
    validate(request)?;
    if let Some(customer) = &request.customer_id {
        super::customers::require_visible(connection, viewer, customer, "customerId").await?;
    }
    let mut customer_id = request.customer_id.clone();
    if let Some(opportunity_id) = &request.opportunity_id {
        let opportunity = super::opportunities::get(connection, viewer, opportunity_id)
            .await
            .map_err(|error| error.as_reference("opportunityId", "no such opportunity"))?;
        customer_id = customer_id.or(opportunity.customer_id);
    }
    let approval = Approval {
        id: uuid::Uuid::new_v4().to_string(),
        opportunity_id: request.opportunity_id.clone(),
        customer_id,
        requester_id: viewer.id.clone(),
        approver_id: None,
        title: request
            .title
            .as_deref()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        amount: request.amount,
        status: "PENDING".into(),
        comment: request
            .comment
            .as_deref()
            .map(str::trim)
            .filter(|comment| !comment.is_empty())
            .map(str::to_owned),
        requested_at: now_rfc3339(),
        decided_at: None,
        product_name: String::new(),
        processed_at: None,
        customer: None,
        requester: None,
        approver: None,
    };
    db::query(&format!(
        "INSERT INTO approvals ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(approval.id.as_str())
    .bind(approval.opportunity_id.as_deref())
    .bind(approval.customer_id.as_deref())
    .bind(approval.requester_id.as_str())
    .bind(approval.approver_id.as_deref())
    .bind(approval.title.as_str())
    .bind(approval.amount)
    .bind(approval.status.as_str())
    .bind(approval.comment.as_deref())
    .bind(approval.requested_at.as_str())
    .bind(approval.decided_at.as_deref())
    // Not a cached statement: sqlx 0.8.6's Any driver binds a NULL `Option<f64>` as a FLOAT4
    // on PostgreSQL, and a statement first prepared with that NULL then refuses the FLOAT8 of
    // a later request ("incorrect binary data format"). Prepared afresh, each execution's
    // types hold. Found by schemathesis.
    .persistent(false)
    .execute(&mut *connection)
    .await?;
    let changes = json!({"new": event_data(&approval)});
    viewer
        .audit(
            connection,
            Action::Create,
            Resource::ApprovalRequest,
            &approval.id,
            Some(changes),
        )
        .await?;
    published
        .append(
            connection,
            "opportunity.events",
            "APPROVAL_REQUESTED",
            &approval.id,
            event_data(&approval),
        )
        .await?;
    super::read_back(connection, &approval.id).await
}

/// Requests the viewer may see: their own; those who decide (MANAGER, COMPLIANCE, ADMIN) see
/// all, since any of them may decide.
pub(crate) fn restrict(viewer: &Viewer, statement: &mut StatementBuilder) {
    if !viewer.role.decides_approvals() {
        statement.push(" AND requester_id = ");
        statement.push_param(viewer.id.to_string());
    }
}

/// A visible request.
pub async fn get(
    connection: &mut Conn<'_>,
    viewer: &Viewer,
    id: &str,
) -> Result<Approval, CrmError> {
    let mut statement = StatementBuilder::new(format!(
        "SELECT {} FROM approvals WHERE id = ",
        selected(connection.dialect())
    ));
    statement.push_param(id.to_string());
    restrict(viewer, &mut statement);
    fetch_visible(connection, statement, "approval").await
}

/// Visible requests, newest first, optionally in one status.
pub async fn list(
    pool: &Pool,
    viewer: &Viewer,
    status: Option<&str>,
    paging: Paging,
) -> Result<super::JsonPage<Approval>, CrmError> {
    if let Some(status) = status {
        let mut problems = Problems::default();
        problems.one_of("status", status, STATUSES);
        problems.into_result()?;
    }
    let build = |select: &str| {
        let mut statement =
            StatementBuilder::new(format!("SELECT {select} FROM approvals WHERE 1 = 1"));
        restrict(viewer, &mut statement);
        if let Some(status) = status {
            statement.push(" AND status = ");
            statement.push_param(status.to_string());
        }
        statement
    };
    super::fetch_json_page(
        pool,
        build,
        &selected(pool.dialect()),
        FIELDS,
        "requested_at DESC, id DESC",
        paging,
    )
    .await
}

/// Moves a PENDING request to `status`; 409 when it is no longer pending. The status check
/// and the change are one statement, so two deciders cannot both win.
async fn settle(
    connection: &mut Conn<'_>,
    approval: &mut Approval,
    status: &str,
    approver_id: Option<&str>,
    comment: Option<String>,
) -> Result<(), CrmError> {
    let now = now_rfc3339();
    let changed = db::query(
        "UPDATE approvals SET status = $1, approver_id = $2, comment = COALESCE($3, comment), \
         decided_at = $4 WHERE id = $5 AND status = 'PENDING'",
    )
    .bind(status)
    .bind(approver_id)
    .bind(comment.as_deref())
    .bind(now.as_str())
    .bind(approval.id.as_str())
    .execute(&mut *connection)
    .await?;
    if changed.rows_affected() == 0 {
        return Err(CrmError::Conflict(format!(
            "this request is {} and can no longer change",
            approval.status
        )));
    }
    approval.status = status.to_owned();
    approval.approver_id = approver_id.map(str::to_owned);
    if comment.is_some() {
        approval.comment = comment;
    }
    approval.decided_at = Some(now);
    Ok(())
}

/// Approves or rejects a request (MANAGER, COMPLIANCE or ADMIN, never one's own).
pub async fn decide(
    connection: &mut Conn<'_>,
    published: &mut Published,
    viewer: &Viewer,
    id: &str,
    decision: Decision,
    comment: Option<String>,
) -> Result<Approval, CrmError> {
    if !viewer.role.decides_approvals() {
        return Err(CrmError::Forbidden(
            "only a MANAGER, COMPLIANCE or ADMIN user may decide approval requests".into(),
        ));
    }
    let mut problems = Problems::default();
    let comment = problems.optional_text("comment", comment.as_deref(), 2000);
    problems.into_result()?;
    let mut approval = get(connection, viewer, id).await?;
    if approval.requester_id == viewer.id {
        return Err(CrmError::Forbidden(
            "you cannot decide your own approval request".into(),
        ));
    }
    let (status, event_type) = match decision {
        Decision::Approve => ("APPROVED", "APPROVAL_APPROVED"),
        Decision::Reject => ("REJECTED", "APPROVAL_REJECTED"),
    };
    settle(connection, &mut approval, status, Some(&viewer.id), comment).await?;
    let changes = json!({"status": status, "comment": approval.comment});
    viewer
        .audit(
            connection,
            Action::Update,
            Resource::ApprovalRequest,
            &approval.id,
            Some(changes),
        )
        .await?;
    let mut data = event_data(&approval);
    data["approverId"] = json!(approval.approver_id);
    data["comment"] = json!(approval.comment);
    published
        .append(
            connection,
            "opportunity.events",
            event_type,
            &approval.id,
            data,
        )
        .await?;
    super::read_back(connection, &approval.id).await
}

/// Withdraws a pending request (requester only).
pub async fn recall(
    connection: &mut Conn<'_>,
    published: &mut Published,
    viewer: &Viewer,
    id: &str,
) -> Result<Approval, CrmError> {
    let mut approval = get(connection, viewer, id).await?;
    if approval.requester_id != viewer.id {
        return Err(CrmError::Forbidden(
            "only the requester may recall a request".into(),
        ));
    }
    settle(connection, &mut approval, "RECALLED", None, None).await?;
    let changes = json!({"status": "RECALLED"});
    viewer
        .audit(
            connection,
            Action::Update,
            Resource::ApprovalRequest,
            &approval.id,
            Some(changes),
        )
        .await?;
    published
        .append(
            connection,
            "opportunity.events",
            "APPROVAL_RECALLED",
            &approval.id,
            event_data(&approval),
        )
        .await?;
    super::read_back(connection, &approval.id).await
}
