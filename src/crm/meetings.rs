//! Meetings: a salesperson's meeting with a customer, its summary and the next action, as the
//! original CRM recorded them. Deletion is soft (`deleted_at`), as for customers and tasks, so
//! the bundled deletion cascades are plain `update` routes.

use crate::store::db::{self, Conn, Pool};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit::{Action, Resource};
use super::customers::{check_owner, require_visible};
use super::reference::{self, Reference};
use super::{fetch_visible, CrmError, Paging, Problems, Published, Viewer};
use crate::store::sql::StatementBuilder;
use crate::template::now_rfc3339;

/// A meeting as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all(serialize = "camelCase", deserialize = "snake_case"))]
#[schema(rename_all = "camelCase")]
pub struct Meeting {
    /// Id (UUID).
    pub id: String,
    /// The customer met.
    pub customer_id: String,
    /// The salesperson who met them.
    pub sales_id: String,
    /// When (RFC 3339).
    pub date: String,
    /// What was discussed.
    pub summary: String,
    /// What happens next.
    pub next_action: Option<String>,
    /// When it happens (RFC 3339).
    pub next_action_date: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
    /// The customer, nested (the original CRM's `meeting.customer`).
    #[schema(value_type = Option<super::reference::CustomerReference>)]
    pub customer: Option<serde_json::Value>,
    /// The salesperson, nested (the original CRM's `meeting.sales`).
    #[schema(value_type = Option<super::reference::UserReference>)]
    pub sales: Option<serde_json::Value>,
}

crate::record_from_row!(Meeting {
    id,
    customer_id,
    sales_id,
    date,
    summary,
    next_action,
    next_action_date,
    created_at,
    updated_at,
    customer,
    sales
});

/// Fields of a new or changed meeting; `None` leaves a field as it is on update.
#[derive(Debug, Clone, Default)]
pub struct MeetingFields {
    /// Customer (required on create).
    pub customer_id: Option<String>,
    /// Salesperson (default: the viewer).
    pub sales_id: Option<String>,
    /// When (required on create).
    pub date: Option<String>,
    /// Summary (required on create).
    pub summary: Option<String>,
    /// Next action; `Some(None)` clears it.
    pub next_action: Option<Option<String>>,
    /// Its date; `Some(None)` clears it.
    pub next_action_date: Option<Option<String>>,
}

/// Filters of a meeting list.
#[derive(Debug, Clone, Default)]
pub struct MeetingFilter {
    /// Only meetings with this customer.
    pub customer_id: Option<String>,
    /// Only meetings of this salesperson.
    pub sales_id: Option<String>,
    /// Only meetings at or after this time (RFC 3339 or a date).
    pub from: Option<String>,
    /// Only meetings at or before this time (RFC 3339 or a date, which means its end).
    pub to: Option<String>,
}

/// The columns a meeting is written with, in the order of [`FIELDS`].
pub(crate) const COLUMNS: &str = "id, customer_id, sales_id, date, summary, next_action, \
     next_action_date, created_at, updated_at";

/// How a meeting appears in a list the database renders (as `Meeting` serialises).
pub(crate) const FIELDS: &[super::JsonField] = &[
    super::field("id", "id"),
    super::field("customerId", "customer_id"),
    super::field("salesId", "sales_id"),
    super::field("date", "date"),
    super::field("summary", "summary"),
    super::field("nextAction", "next_action"),
    super::field("nextActionDate", "next_action_date"),
    super::field("createdAt", "created_at"),
    super::field("updatedAt", "updated_at"),
    super::json("customer", "customer"),
    super::json("sales", "sales"),
];

/// The records a meeting nests.
const REFERENCES: &[Reference] = &[
    Reference {
        alias: "customer",
        table: "customers",
        pointer: "meetings.customer_id",
        keys: reference::CUSTOMER_KEYS,
    },
    Reference {
        alias: "sales",
        table: "users",
        pointer: "meetings.sales_id",
        keys: reference::USER_KEYS,
    },
];

/// A meeting's `SELECT` list on `dialect`: its columns and what it nests.
pub(crate) fn selected(dialect: crate::store::Dialect) -> String {
    reference::selected(COLUMNS, REFERENCES, dialect)
}

impl super::Record for Meeting {
    const TABLE: &'static str = "meetings";
    const WHAT: &'static str = "meeting";

    fn selected(dialect: crate::store::Dialect) -> String {
        selected(dialect)
    }
}

fn check(fields: &MeetingFields, creating: bool) -> Result<MeetingFields, CrmError> {
    let mut problems = Problems::default();
    let mut checked = MeetingFields {
        customer_id: fields.customer_id.clone(),
        sales_id: fields.sales_id.clone(),
        ..MeetingFields::default()
    };
    if creating && fields.customer_id.is_none() {
        problems.add("customerId", "is required");
    }
    match &fields.date {
        Some(date) => checked.date = Some(problems.timestamp("date", date)),
        None if creating => problems.add("date", "is required"),
        None => {}
    }
    match &fields.summary {
        Some(summary) => checked.summary = Some(problems.text("summary", summary, 5000)),
        None if creating => problems.add("summary", "is required"),
        None => {}
    }
    checked.next_action = fields
        .next_action
        .as_ref()
        .map(|value| problems.optional_text("nextAction", value.as_deref(), 1000));
    checked.next_action_date = fields.next_action_date.as_ref().map(|value| {
        value
            .as_deref()
            .map(|value| problems.timestamp("nextActionDate", value))
    });
    problems.into_result()?;
    Ok(checked)
}

/// Checks fields before the transaction starts (for 400s).
pub fn validate(fields: &MeetingFields, creating: bool) -> Result<(), CrmError> {
    check(fields, creating).map(|_| ())
}

fn event_data(meeting: &Meeting) -> serde_json::Value {
    json!({
        "meetingId": meeting.id,
        "customerId": meeting.customer_id,
        "salesId": meeting.sales_id,
        "date": meeting.date,
        "summary": meeting.summary,
        "nextAction": meeting.next_action,
        "nextActionDate": meeting.next_action_date,
    })
}

/// Which meetings a viewer sees: held by someone in their scope, or with a customer owned by
/// someone in their scope (as tasks).
pub(crate) fn restrict(viewer: &Viewer, statement: &mut StatementBuilder) {
    if viewer.role.sees_everything() {
        return;
    }
    statement.push(" AND (1 = 1");
    viewer.restrict(statement, "sales_id");
    statement.push(" OR customer_id IN (SELECT id FROM customers WHERE 1 = 1");
    viewer.restrict(statement, "owner_id");
    statement.push("))");
}

async fn announce(
    connection: &mut Conn<'_>,
    published: &mut Published,
    event_type: &str,
    meeting: &Meeting,
) -> Result<(), CrmError> {
    published
        .append(
            connection,
            "sales-activity.events",
            event_type,
            &meeting.id,
            event_data(meeting),
        )
        .await?;
    Ok(())
}

/// Records a meeting with a visible customer (held by the viewer unless another salesperson is
/// allowed) and announces `MEETING_CREATED`.
pub async fn create(
    connection: &mut Conn<'_>,
    published: &mut Published,
    viewer: &Viewer,
    fields: &MeetingFields,
) -> Result<Meeting, CrmError> {
    viewer.require_changes()?;
    let fields = check(fields, true)?;
    let customer_id = fields.customer_id.unwrap_or_default();
    require_visible(connection, viewer, &customer_id, "customerId").await?;
    if let Some(sales) = &fields.sales_id {
        check_owner(connection, viewer, sales).await?;
    }
    let now = now_rfc3339();
    let meeting = Meeting {
        id: uuid::Uuid::new_v4().to_string(),
        customer_id,
        sales_id: fields.sales_id.unwrap_or_else(|| viewer.id.clone()),
        date: fields.date.unwrap_or_default(),
        summary: fields.summary.unwrap_or_default(),
        next_action: fields.next_action.flatten(),
        next_action_date: fields.next_action_date.flatten(),
        created_at: now.clone(),
        updated_at: now,
        customer: None,
        sales: None,
    };
    db::query(&format!(
        "INSERT INTO meetings ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(meeting.id.as_str())
    .bind(meeting.customer_id.as_str())
    .bind(meeting.sales_id.as_str())
    .bind(meeting.date.as_str())
    .bind(meeting.summary.as_str())
    .bind(meeting.next_action.as_deref())
    .bind(meeting.next_action_date.as_deref())
    .bind(meeting.created_at.as_str())
    .bind(meeting.updated_at.as_str())
    .execute(&mut *connection)
    .await?;
    let changes = json!({"new": event_data(&meeting)});
    viewer
        .audit(
            connection,
            Action::Create,
            Resource::Meeting,
            &meeting.id,
            Some(changes),
        )
        .await?;
    announce(connection, published, "MEETING_CREATED", &meeting).await?;
    super::read_back(connection, &meeting.id).await
}

/// A visible, not deleted meeting.
pub async fn get(
    connection: &mut Conn<'_>,
    viewer: &Viewer,
    id: &str,
) -> Result<Meeting, CrmError> {
    let mut statement = StatementBuilder::new(format!(
        "SELECT {} FROM meetings WHERE deleted_at IS NULL AND id = ",
        selected(connection.dialect())
    ));
    statement.push_param(id.to_string());
    restrict(viewer, &mut statement);
    fetch_visible(connection, statement, "meeting").await
}

/// Visible meetings matching `filter`, latest first.
pub async fn list(
    pool: &Pool,
    viewer: &Viewer,
    filter: &MeetingFilter,
    paging: Paging,
) -> Result<super::JsonPage<Meeting>, CrmError> {
    let mut problems = Problems::default();
    let from = filter
        .from
        .as_deref()
        .map(|from| problems.timestamp("from", from));
    let to = filter
        .to
        .as_deref()
        .map(|to| problems.timestamp_until("to", to));
    problems.into_result()?;
    let build = |select: &str| {
        let mut statement = StatementBuilder::new(format!(
            "SELECT {select} FROM meetings WHERE deleted_at IS NULL"
        ));
        restrict(viewer, &mut statement);
        statement.push_given([
            (" AND customer_id = ", filter.customer_id.as_ref()),
            (" AND sales_id = ", filter.sales_id.as_ref()),
            (" AND date >= ", from.as_ref()),
            (" AND date <= ", to.as_ref()),
        ]);
        statement
    };
    super::fetch_json_page(
        pool,
        build,
        &selected(pool.dialect()),
        FIELDS,
        "date DESC, id DESC",
        paging,
    )
    .await
}

/// Changes a visible meeting and announces `MEETING_UPDATED`.
pub async fn update(
    connection: &mut Conn<'_>,
    published: &mut Published,
    viewer: &Viewer,
    id: &str,
    fields: &MeetingFields,
) -> Result<Meeting, CrmError> {
    viewer.require_changes()?;
    let fields = check(fields, false)?;
    let mut meeting = get(connection, viewer, id).await?;
    let before = event_data(&meeting);
    if let Some(customer) = fields.customer_id {
        if customer != meeting.customer_id {
            require_visible(connection, viewer, &customer, "customerId").await?;
        }
        meeting.customer_id = customer;
    }
    if let Some(sales) = fields.sales_id {
        if sales != meeting.sales_id {
            check_owner(connection, viewer, &sales).await?;
        }
        meeting.sales_id = sales;
    }
    if let Some(date) = fields.date {
        meeting.date = date;
    }
    if let Some(summary) = fields.summary {
        meeting.summary = summary;
    }
    if let Some(next_action) = fields.next_action {
        meeting.next_action = next_action;
    }
    if let Some(next_action_date) = fields.next_action_date {
        meeting.next_action_date = next_action_date;
    }
    meeting.updated_at = now_rfc3339();
    // A meeting moved to another time is reminded of again.
    db::query(
        "UPDATE meetings SET customer_id = $1, sales_id = $2, date = $3, summary = $4, \
         next_action = $5, next_action_date = $6, updated_at = $7, \
         reminded_at = CASE WHEN date = $3 THEN reminded_at ELSE NULL END WHERE id = $8",
    )
    .bind(meeting.customer_id.as_str())
    .bind(meeting.sales_id.as_str())
    .bind(meeting.date.as_str())
    .bind(meeting.summary.as_str())
    .bind(meeting.next_action.as_deref())
    .bind(meeting.next_action_date.as_deref())
    .bind(meeting.updated_at.as_str())
    .bind(meeting.id.as_str())
    .execute(&mut *connection)
    .await?;
    let changes = json!({"before": before, "after": event_data(&meeting)});
    viewer
        .audit(
            connection,
            Action::Update,
            Resource::Meeting,
            &meeting.id,
            Some(changes),
        )
        .await?;
    announce(connection, published, "MEETING_UPDATED", &meeting).await?;
    super::read_back(connection, &meeting.id).await
}

/// Soft-deletes a visible meeting and announces `MEETING_DELETED` with what it was.
pub async fn delete(
    connection: &mut Conn<'_>,
    published: &mut Published,
    viewer: &Viewer,
    id: &str,
) -> Result<(), CrmError> {
    viewer.require_changes()?;
    let meeting = get(connection, viewer, id).await?;
    // Only a live row: of two deletes at once, the second finds nothing (404) and audits
    // nothing.
    let done = db::query(
        "UPDATE meetings SET deleted_at = $1, updated_at = $1 \
         WHERE id = $2 AND deleted_at IS NULL",
    )
    .bind(now_rfc3339())
    .bind(meeting.id.as_str())
    .execute(&mut *connection)
    .await?;
    if done.rows_affected() != 1 {
        return Err(CrmError::NotFound("meeting"));
    }
    viewer
        .audit(
            connection,
            Action::Delete,
            Resource::Meeting,
            &meeting.id,
            None,
        )
        .await?;
    announce(connection, published, "MEETING_DELETED", &meeting).await
}
