//! Opportunities: possible deals with a customer, moving through sales stages.

use crate::store::db::{self, Conn, Pool};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::customers::check_owner;
use super::{fetch_visible, CrmError, Paging, Problems, Published, Viewer};
use crate::store::sql::StatementBuilder;
use crate::template::now_rfc3339;

/// Allowed `stage` values.
pub const STAGES: &[&str] = &["PROSPECTING", "PROPOSAL", "NEGOTIATION", "WON", "LOST"];

/// An opportunity as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all(serialize = "camelCase", deserialize = "snake_case"))]
#[schema(rename_all = "camelCase")]
pub struct Opportunity {
    /// Id (UUID).
    pub id: String,
    /// The customer.
    pub customer_id: Option<String>,
    /// Name.
    pub name: String,
    /// Expected value.
    pub amount: f64,
    /// PROSPECTING, PROPOSAL, NEGOTIATION, WON or LOST.
    pub stage: String,
    /// The user responsible.
    pub owner_id: Option<String>,
    /// Completed tasks recorded against it.
    pub activity_count: i64,
    /// When the last activity was recorded.
    pub last_activity_at: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
}

crate::record_from_row!(Opportunity {
    id,
    customer_id,
    name,
    amount,
    stage,
    owner_id,
    activity_count,
    last_activity_at,
    created_at,
    updated_at
});

/// Fields of a new or changed opportunity; `None` leaves a field as it is on update.
#[derive(Debug, Clone, Default)]
pub struct OpportunityFields {
    /// Customer (required on create).
    pub customer_id: Option<String>,
    /// Name (required on create).
    pub name: Option<String>,
    /// Amount.
    pub amount: Option<f64>,
    /// Stage.
    pub stage: Option<String>,
    /// Owner.
    pub owner_id: Option<String>,
}

/// The columns a record is read from, in the order of [`FIELDS`].
pub(crate) const COLUMNS: &str = "id, customer_id, name, amount, stage, owner_id, activity_count, last_activity_at, created_at, updated_at";

/// How a opportunity appears in a list the database renders (as `Opportunity` serialises).
pub(crate) const FIELDS: &[super::JsonField] = &[
    super::field("id", "id"),
    super::field("customerId", "customer_id"),
    super::field("name", "name"),
    super::float("amount", "amount"),
    super::field("stage", "stage"),
    super::field("ownerId", "owner_id"),
    super::field("activityCount", "activity_count"),
    super::field("lastActivityAt", "last_activity_at"),
    super::field("createdAt", "created_at"),
    super::field("updatedAt", "updated_at"),
];

fn check(fields: &OpportunityFields, creating: bool) -> Result<OpportunityFields, CrmError> {
    let mut problems = Problems::default();
    let mut checked = fields.clone();
    match &fields.name {
        Some(name) => checked.name = Some(problems.text("name", name, 300)),
        None if creating => problems.add("name", "is required"),
        None => {}
    }
    match &fields.customer_id {
        Some(customer) => checked.customer_id = Some(problems.text("customerId", customer, 100)),
        None if creating => problems.add("customerId", "is required"),
        None => {}
    }
    if let Some(amount) = fields.amount {
        problems.amount("amount", amount);
    }
    if let Some(stage) = &fields.stage {
        problems.one_of("stage", stage, STAGES);
    }
    problems.into_result()?;
    Ok(checked)
}

/// Checks fields before the transaction starts (for 400s).
pub fn validate(fields: &OpportunityFields, creating: bool) -> Result<(), CrmError> {
    check(fields, creating).map(|_| ())
}

fn event_data(opportunity: &Opportunity) -> serde_json::Value {
    json!({
        "opportunityId": opportunity.id,
        "customerId": opportunity.customer_id,
        "name": opportunity.name,
        "amount": opportunity.amount,
        "stage": opportunity.stage,
        "ownerId": opportunity.owner_id,
    })
}

async fn insert(connection: &mut Conn<'_>, opportunity: &Opportunity) -> Result<(), CrmError> {
    db::query(&format!(
        "INSERT INTO opportunities ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(opportunity.id.as_str())
    .bind(opportunity.customer_id.as_deref())
    .bind(opportunity.name.as_str())
    .bind(opportunity.amount)
    .bind(opportunity.stage.as_str())
    .bind(opportunity.owner_id.as_deref())
    .bind(opportunity.activity_count)
    .bind(opportunity.last_activity_at.as_deref())
    .bind(opportunity.created_at.as_str())
    .bind(opportunity.updated_at.as_str())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Creates an opportunity on a visible customer and announces `OPPORTUNITY_CREATED`.
pub async fn create(
    connection: &mut Conn<'_>,
    published: &mut Published,
    viewer: &Viewer,
    fields: &OpportunityFields,
) -> Result<Opportunity, CrmError> {
    viewer.require_changes()?;
    let fields = check(fields, true)?;
    let customer_id = fields.customer_id.unwrap_or_default();
    super::customers::require_visible(connection, viewer, &customer_id, "customerId").await?;
    if let Some(owner) = &fields.owner_id {
        check_owner(connection, viewer, owner).await?;
    }
    let now = now_rfc3339();
    let opportunity = Opportunity {
        id: uuid::Uuid::new_v4().to_string(),
        customer_id: Some(customer_id),
        name: fields.name.unwrap_or_default(),
        amount: fields.amount.unwrap_or(0.0),
        stage: fields.stage.unwrap_or_else(|| "PROSPECTING".to_owned()),
        owner_id: Some(fields.owner_id.unwrap_or_else(|| viewer.id.clone())),
        activity_count: 0,
        last_activity_at: None,
        created_at: now.clone(),
        updated_at: now,
    };
    insert(connection, &opportunity).await?;
    published
        .append(
            connection,
            "opportunity.events",
            "OPPORTUNITY_CREATED",
            &opportunity.id,
            event_data(&opportunity),
        )
        .await?;
    Ok(opportunity)
}

/// A visible opportunity.
pub async fn get(
    connection: &mut Conn<'_>,
    viewer: &Viewer,
    id: &str,
) -> Result<Opportunity, CrmError> {
    let mut statement =
        StatementBuilder::new(format!("SELECT {COLUMNS} FROM opportunities WHERE id = "));
    statement.push_param(id.to_string());
    viewer.restrict(&mut statement, "owner_id");
    fetch_visible(connection, statement, "opportunity").await
}

/// Visible opportunities, newest first, optionally of one customer or stage.
pub async fn list(
    pool: &Pool,
    viewer: &Viewer,
    customer_id: Option<&str>,
    stage: Option<&str>,
    paging: Paging,
) -> Result<super::JsonPage<Opportunity>, CrmError> {
    if let Some(stage) = stage {
        let mut problems = Problems::default();
        problems.one_of("stage", stage, STAGES);
        problems.into_result()?;
    }
    let build = |select: &str| {
        let mut statement =
            StatementBuilder::new(format!("SELECT {select} FROM opportunities WHERE 1 = 1"));
        viewer.restrict(&mut statement, "owner_id");
        if let Some(customer) = customer_id {
            statement.push(" AND customer_id = ");
            statement.push_param(customer.to_string());
        }
        if let Some(stage) = stage {
            statement.push(" AND stage = ");
            statement.push_param(stage.to_string());
        }
        statement
    };
    super::fetch_json_page(
        pool,
        build,
        COLUMNS,
        FIELDS,
        "created_at DESC, id DESC",
        paging,
    )
    .await
}

/// Changes a visible opportunity and announces `OPPORTUNITY_UPDATED`.
pub async fn update(
    connection: &mut Conn<'_>,
    published: &mut Published,
    viewer: &Viewer,
    id: &str,
    fields: &OpportunityFields,
) -> Result<Opportunity, CrmError> {
    viewer.require_changes()?;
    let fields = check(fields, false)?;
    let mut opportunity = get(connection, viewer, id).await?;
    if let Some(customer) = fields.customer_id {
        super::customers::require_visible(connection, viewer, &customer, "customerId").await?;
        opportunity.customer_id = Some(customer);
    }
    if let Some(owner) = fields.owner_id {
        if opportunity.owner_id.as_deref() != Some(owner.as_str()) {
            check_owner(connection, viewer, &owner).await?;
        }
        opportunity.owner_id = Some(owner);
    }
    if let Some(name) = fields.name {
        opportunity.name = name;
    }
    if let Some(amount) = fields.amount {
        opportunity.amount = amount;
    }
    if let Some(stage) = fields.stage {
        opportunity.stage = stage;
    }
    opportunity.updated_at = now_rfc3339();
    // activity_count and last_activity_at belong to the activity route; never overwrite them.
    db::query(
        "UPDATE opportunities SET customer_id = $1, name = $2, amount = $3, stage = $4, \
         owner_id = $5, updated_at = $6 WHERE id = $7",
    )
    .bind(opportunity.customer_id.as_deref())
    .bind(opportunity.name.as_str())
    .bind(opportunity.amount)
    .bind(opportunity.stage.as_str())
    .bind(opportunity.owner_id.as_deref())
    .bind(opportunity.updated_at.as_str())
    .bind(opportunity.id.as_str())
    .execute(&mut *connection)
    .await?;
    published
        .append(
            connection,
            "opportunity.events",
            "OPPORTUNITY_UPDATED",
            &opportunity.id,
            event_data(&opportunity),
        )
        .await?;
    Ok(opportunity)
}
