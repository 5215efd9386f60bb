//! The audit log: who did what to which record, as the original CRM's compliance pages read it.
//!
//! An entry is written through the connection of the change it records, so it commits or rolls
//! back with that change: a record never changes without its entry, and no entry names a
//! change that did not happen. Entries are never changed or deleted through the API. What
//! routes do in reaction to events (a cascade, a first-contact task) is not a person's action
//! and is not audited here; the event log holds it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::reference::{self, Reference};
use super::{fetch_visible, CrmError, Paging, Problems, Viewer};
use crate::store::db::{self, Conn, Pool};
use crate::store::sql::StatementBuilder;
use crate::template::now_rfc3339;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A record was created.
    Create,
    /// A record was changed (an approval decided, a user deactivated).
    Update,
    /// A record was deleted.
    Delete,
    /// A user logged in.
    Login,
    /// A user logged out.
    Logout,
}

impl Action {
    /// The name the original CRM stored and its frontend colours.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Login => "LOGIN",
            Self::Logout => "LOGOUT",
        }
    }
}

/// The kind of record an entry is about, named as the original CRM's frontend labels them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A user.
    User,
    /// A customer.
    Customer,
    /// A task.
    Task,
    /// A meeting.
    Meeting,
    /// An approval request.
    ApprovalRequest,
}

impl Resource {
    /// The stored name (`resourceType`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Customer => "Customer",
            Self::Task => "Task",
            Self::Meeting => "Meeting",
            Self::ApprovalRequest => "ApprovalRequest",
        }
    }
}

/// Who acted, and from where.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// Their user id.
    pub user_id: &'a str,
    /// The address the request came from: the peer of the connection, so behind a proxy the
    /// proxy's (forwarding headers are not trusted: any client can write them).
    pub address: Option<IpAddr>,
}

impl Viewer {
    /// The viewer as the actor of an audited change.
    pub fn actor(&self) -> Actor<'_> {
        Actor {
            user_id: &self.id,
            address: self.address,
        }
    }

    /// Audits a change the viewer made to `resource` `resource_id`, through the connection of
    /// that change.
    pub async fn audit(
        &self,
        connection: &mut Conn<'_>,
        action: Action,
        resource: Resource,
        resource_id: &str,
        changes: Option<Value>,
    ) -> Result<(), sqlx::Error> {
        record(
            connection,
            Change {
                actor: self.actor(),
                action,
                resource,
                resource_id,
                changes,
            },
        )
        .await
    }
}

/// One audited change, before it is written.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// Who.
    pub actor: Actor<'a>,
    /// What.
    pub action: Action,
    /// To which kind of record.
    pub resource: Resource,
    /// Which one.
    pub resource_id: &'a str,
    /// What changed, for people reading the log (`{before, after}`, `{new}`, a decision).
    pub changes: Option<Value>,
}

/// Writes `change` through `connection`, inside the transaction of the change itself.
pub async fn record(connection: &mut Conn<'_>, change: Change<'_>) -> Result<(), sqlx::Error> {
    let changes = change.changes.as_ref().map(Value::to_string);
    let address = change.actor.address.map(|address| address.to_string());
    db::query(
        "INSERT INTO audit_log (id, user_id, action, resource_type, resource_id, changes, \
         ip_address, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    // Time-ordered and, within the process, strictly increasing: the log's order within one
    // millisecond is the order of the changes.
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(change.actor.user_id)
    .bind(change.action.as_str())
    .bind(change.resource.as_str())
    .bind(change.resource_id)
    .bind(changes.as_deref())
    .bind(address.as_deref())
    .bind(now_rfc3339().as_str())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// An audit entry as the API shows it (the original CRM's `AuditLog` with its `user`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all(serialize = "camelCase", deserialize = "snake_case"))]
#[schema(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Id (a UUID of version 7, in the order of the entries).
    pub id: String,
    /// Who acted.
    pub user_id: String,
    /// CREATE, UPDATE, DELETE, LOGIN or LOGOUT.
    pub action: String,
    /// User, Customer, Task, Meeting or ApprovalRequest.
    pub resource_type: String,
    /// The record's id.
    pub resource_id: Option<String>,
    /// What changed.
    #[schema(value_type = Option<Object>)]
    pub changes: Option<Value>,
    /// Where the request came from (the connection's peer).
    pub ip_address: Option<String>,
    /// When (RFC 3339).
    #[serde(rename = "timestamp")]
    #[schema(rename = "timestamp")]
    pub recorded_at: String,
    /// Who acted, nested.
    #[schema(value_type = Option<ActorReference>)]
    pub user: Option<Value>,
}

crate::record_from_row!(AuditEntry {
    id,
    user_id,
    action,
    resource_type,
    resource_id,
    changes,
    ip_address,
    recorded_at,
    user
});

/// The user who acted, nested in an entry, for the OpenAPI document.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ActorReference {
    /// Id.
    id: String,
    /// Display name.
    name: String,
    /// Email address.
    email: String,
    /// Role (now, not when they acted).
    role: String,
}

const COLUMNS: &str =
    "id, user_id, action, resource_type, resource_id, changes, ip_address, recorded_at";

/// How an entry appears in a list the database renders (as `AuditEntry` serialises).
pub(crate) const FIELDS: &[super::JsonField] = &[
    super::field("id", "id"),
    super::field("userId", "user_id"),
    super::field("action", "action"),
    super::field("resourceType", "resource_type"),
    super::field("resourceId", "resource_id"),
    super::json("changes", "changes"),
    super::field("ipAddress", "ip_address"),
    super::field("timestamp", "recorded_at"),
    super::json("user", "user"),
];

/// An entry's `SELECT` list on `dialect`: its columns and who acted.
pub(crate) fn selected(dialect: crate::store::Dialect) -> String {
    reference::selected(COLUMNS, REFERENCES, dialect)
}

const REFERENCES: &[Reference] = &[Reference {
    alias: "user",
    table: "users",
    pointer: "audit_log.user_id",
    keys: &[
        ("id", "id"),
        ("name", "name"),
        ("email", "email"),
        ("role", "role"),
    ],
}];

/// Filters of an audit list; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this user's actions.
    pub user_id: Option<String>,
    /// Only this action (`LOGIN`).
    pub action: Option<String>,
    /// Only this kind of record (`Customer`).
    pub resource_type: Option<String>,
    /// Only this record.
    pub resource_id: Option<String>,
    /// Only entries at or after this time (RFC 3339 or a date).
    pub start_date: Option<String>,
    /// Only entries at or before this time (RFC 3339, or a date for the whole day).
    pub end_date: Option<String>,
}

fn require_auditor(viewer: &Viewer) -> Result<(), CrmError> {
    if viewer.role.sees_everything() {
        Ok(())
    } else {
        Err(CrmError::Forbidden(
            "only an ADMIN or COMPLIANCE user may read the audit log".into(),
        ))
    }
}

/// Entries matching `filter`, newest first (ADMIN and COMPLIANCE only).
pub async fn list(
    pool: &Pool,
    viewer: &Viewer,
    filter: &AuditFilter,
    paging: Paging,
) -> Result<super::JsonPage<AuditEntry>, CrmError> {
    require_auditor(viewer)?;
    let mut problems = Problems::default();
    let start = filter
        .start_date
        .as_deref()
        .map(|start| problems.timestamp("startDate", start));
    let end = filter
        .end_date
        .as_deref()
        .map(|end| problems.timestamp_until("endDate", end));
    problems.into_result()?;
    let build = |select: &str| {
        let mut statement =
            StatementBuilder::new(format!("SELECT {select} FROM audit_log WHERE 1 = 1"));
        statement.push_given([
            (" AND user_id = ", filter.user_id.as_ref()),
            (" AND action = ", filter.action.as_ref()),
            (" AND resource_type = ", filter.resource_type.as_ref()),
            (" AND resource_id = ", filter.resource_id.as_ref()),
            (" AND recorded_at >= ", start.as_ref()),
            (" AND recorded_at <= ", end.as_ref()),
        ]);
        statement
    };
    super::fetch_json_page(
        pool,
        build,
        &selected(pool.dialect()),
        FIELDS,
        "recorded_at DESC, id DESC",
        paging,
    )
    .await
}

/// One entry (ADMIN and COMPLIANCE only).
pub async fn get(
    connection: &mut Conn<'_>,
    viewer: &Viewer,
    id: &str,
) -> Result<AuditEntry, CrmError> {
    require_auditor(viewer)?;
    let mut statement = StatementBuilder::new(format!(
        "SELECT {} FROM audit_log WHERE id = ",
        selected(connection.dialect())
    ));
    statement.push_param(id.to_string());
    fetch_visible(connection, statement, "audit entry").await
}
