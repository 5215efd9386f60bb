//! Customers: the companies and people sales work with. Deletion is soft (`deleted_at`).

use crate::store::db::{self, Conn, Pool};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit::{Action, Resource};
use super::reference::{self, Reference};
use super::{fetch_visible, is_unique_violation, CrmError, Paging, Problems, Published, Viewer};
use crate::auth::Role;
use crate::store::sql::StatementBuilder;
use crate::template::now_rfc3339;

/// Allowed `size` values.
pub const SIZES: &[&str] = &["SMALL", "MEDIUM", "LARGE", "ENTERPRISE"];
/// Allowed `investmentProfile` values: the original CRM's.
pub const INVESTMENT_PROFILES: &[&str] = &["conservative", "moderate", "aggressive"];
/// The range of `riskTolerance`.
pub const RISK_TOLERANCE: std::ops::RangeInclusive<i64> = 1..=10;

/// A customer as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all(serialize = "camelCase", deserialize = "snake_case"))]
#[schema(rename_all = "camelCase")]
pub struct Customer {
    /// Id (UUID).
    pub id: String,
    /// Name.
    pub name: String,
    /// Email (unique among customers).
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Industry.
    pub industry: Option<String>,
    /// SMALL, MEDIUM, LARGE or ENTERPRISE.
    pub size: Option<String>,
    /// Postal address.
    pub address: Option<String>,
    /// conservative, moderate or aggressive.
    pub investment_profile: Option<String>,
    /// 1 (lowest) to 10.
    pub risk_tolerance: Option<i64>,
    /// Investment experience, in the customer's words.
    pub investment_experience: Option<String>,
    /// The user responsible for the customer.
    pub owner_id: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
    /// The owner, nested (the original CRM's `customer.assignedSales`).
    #[schema(value_type = Option<super::reference::UserReference>)]
    pub assigned_sales: Option<serde_json::Value>,
}

crate::record_from_row!(Customer {
    id,
    name,
    email,
    phone,
    industry,
    size,
    address,
    investment_profile,
    risk_tolerance,
    investment_experience,
    owner_id,
    created_at,
    updated_at,
    assigned_sales
});

/// Fields of a new or changed customer; `None` leaves a field as it is on update.
#[derive(Debug, Clone, Default)]
pub struct CustomerFields {
    /// Name.
    pub name: Option<String>,
    /// Email; `Some(None)` clears it.
    pub email: Option<Option<String>>,
    /// Phone.
    pub phone: Option<Option<String>>,
    /// Industry.
    pub industry: Option<Option<String>>,
    /// Size.
    pub size: Option<Option<String>>,
    /// Address.
    pub address: Option<Option<String>>,
    /// Investment profile.
    pub investment_profile: Option<Option<String>>,
    /// Risk tolerance.
    pub risk_tolerance: Option<Option<i64>>,
    /// Investment experience.
    pub investment_experience: Option<Option<String>>,
    /// Owner.
    pub owner_id: Option<String>,
}

/// The columns a record is read from, in the order of [`FIELDS`].
pub(crate) const COLUMNS: &str =
    "id, name, email, phone, industry, size, address, investment_profile, \
     risk_tolerance, investment_experience, owner_id, created_at, updated_at";

/// How a customer appears in a list the database renders (as `Customer` serialises).
pub(crate) const FIELDS: &[super::JsonField] = &[
    super::field("id", "id"),
    super::field("name", "name"),
    super::field("email", "email"),
    super::field("phone", "phone"),
    super::field("industry", "industry"),
    super::field("size", "size"),
    super::field("address", "address"),
    super::field("investmentProfile", "investment_profile"),
    super::field("riskTolerance", "risk_tolerance"),
    super::field("investmentExperience", "investment_experience"),
    super::field("ownerId", "owner_id"),
    super::field("createdAt", "created_at"),
    super::field("updatedAt", "updated_at"),
    super::json("assignedSales", "assigned_sales"),
];

/// The records a customer nests.
const REFERENCES: &[Reference] = &[Reference {
    alias: "assigned_sales",
    table: "users",
    pointer: "customers.owner_id",
    keys: reference::USER_KEYS,
}];

/// A customer's `SELECT` list on `dialect`: its columns and what it nests.
pub(crate) fn selected(dialect: crate::store::Dialect) -> String {
    reference::selected(COLUMNS, REFERENCES, dialect)
}

impl super::Record for Customer {
    const TABLE: &'static str = "customers";
    const WHAT: &'static str = "customer";

    fn selected(dialect: crate::store::Dialect) -> String {
        selected(dialect)
    }
}

fn event_data(customer: &Customer) -> serde_json::Value {
    json!({
        "customerId": customer.id,
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "industry": customer.industry,
        "size": customer.size,
        "investmentProfile": customer.investment_profile,
        "riskTolerance": customer.risk_tolerance,
        "ownerId": customer.owner_id,
    })
}

/// Validates fields; on create, `name` is required.
fn check(fields: &CustomerFields, creating: bool) -> Result<CustomerFields, CrmError> {
    let mut problems = Problems::default();
    let mut checked = CustomerFields::default();
    match &fields.name {
        Some(name) => checked.name = Some(problems.text("name", name, 200)),
        None if creating => problems.add("name", "is required"),
        None => {}
    }
    let optional = |problems: &mut Problems, field: &str, value: &Option<Option<String>>, max| {
        value
            .as_ref()
            .map(|value| problems.optional_text(field, value.as_deref(), max))
    };
    checked.email = fields.email.as_ref().map(|email| {
        email
            .as_deref()
            .filter(|email| !email.trim().is_empty())
            .map(|email| problems.email("email", email))
    });
    checked.phone = optional(&mut problems, "phone", &fields.phone, 50);
    checked.industry = optional(&mut problems, "industry", &fields.industry, 100);
    checked.address = optional(&mut problems, "address", &fields.address, 500);
    checked.size = fields.size.as_ref().map(|size| {
        size.as_deref()
            .map(|size| problems.one_of("size", size, SIZES))
    });
    checked.investment_profile = fields.investment_profile.as_ref().map(|profile| {
        profile
            .as_deref()
            .map(|profile| problems.one_of("investmentProfile", profile, INVESTMENT_PROFILES))
    });
    if let Some(Some(risk)) = fields.risk_tolerance {
        if !RISK_TOLERANCE.contains(&risk) {
            problems.add(
                "riskTolerance",
                format!(
                    "must be a whole number from {} to {}",
                    RISK_TOLERANCE.start(),
                    RISK_TOLERANCE.end()
                ),
            );
        }
    }
    checked.risk_tolerance = fields.risk_tolerance;
    checked.investment_experience = optional(
        &mut problems,
        "investmentExperience",
        &fields.investment_experience,
        2000,
    );
    checked.owner_id = fields.owner_id.clone();
    problems.into_result()?;
    Ok(checked)
}

/// Who may own a record the viewer creates or reassigns: themselves; a manager also their team;
/// an admin anyone.
pub async fn check_owner(
    connection: &mut Conn<'_>,
    viewer: &Viewer,
    owner_id: &str,
) -> Result<(), CrmError> {
    if viewer.role == Role::Admin || (owner_id == viewer.id && viewer.role.changes_records()) {
        return Ok(());
    }
    if viewer.role == Role::Manager {
        let in_team: Option<(String,)> =
            db::query("SELECT id FROM users WHERE id = $1 AND manager_id = $2")
                .bind(owner_id)
                .bind(viewer.id.as_str())
                .fetch_optional_as(&mut *connection)
                .await?;
        if in_team.is_some() {
            return Ok(());
        }
        return Err(CrmError::Forbidden(
            "a manager may assign records only to themselves or their team".into(),
        ));
    }
    viewer.require_changes()?;
    Err(CrmError::Forbidden(
        "only a manager or an admin may assign records to someone else".into(),
    ))
}

/// Checks that a customer the request names exists and is visible to the viewer; otherwise a
/// 400 on `field` (the same answer for "missing" and "someone else's", so nothing leaks).
pub async fn require_visible(
    connection: &mut Conn<'_>,
    viewer: &Viewer,
    id: &str,
    field: &str,
) -> Result<(), CrmError> {
    get(connection, viewer, id)
        .await
        .map(|_| ())
        .map_err(|error| error.as_reference(field, "no such customer"))
}

fn conflict_or(error: sqlx::Error) -> CrmError {
    if is_unique_violation(&error) {
        CrmError::Conflict("a customer with this email already exists".into())
    } else {
        error.into()
    }
}

/// Creates a customer owned by the viewer (or the given owner) and its `CUSTOMER_CREATED`.
pub async fn create(
    connection: &mut Conn<'_>,
    published: &mut Published,
    viewer: &Viewer,
    fields: &CustomerFields,
) -> Result<Customer, CrmError> {
    viewer.require_changes()?;
    let fields = check(fields, true)?;
    if let Some(owner) = &fields.owner_id {
        check_owner(connection, viewer, owner).await?;
    }
    let now = now_rfc3339();
    let customer = Customer {
        id: uuid::Uuid::new_v4().to_string(),
        name: fields.name.unwrap_or_default(),
        email: fields.email.flatten(),
        phone: fields.phone.flatten(),
        industry: fields.industry.flatten(),
        size: fields.size.flatten(),
        address: fields.address.flatten(),
        investment_profile: fields.investment_profile.flatten(),
        risk_tolerance: fields.risk_tolerance.flatten(),
        investment_experience: fields.investment_experience.flatten(),
        owner_id: Some(fields.owner_id.unwrap_or_else(|| viewer.id.clone())),
        created_at: now.clone(),
        updated_at: now,
        assigned_sales: None,
    };
    db::query(&format!(
        "INSERT INTO customers ({COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(customer.id.as_str())
    .bind(customer.name.as_str())
    .bind(customer.email.as_deref())
    .bind(customer.phone.as_deref())
    .bind(customer.industry.as_deref())
    .bind(customer.size.as_deref())
    .bind(customer.address.as_deref())
    .bind(customer.investment_profile.as_deref())
    .bind(customer.risk_tolerance)
    .bind(customer.investment_experience.as_deref())
    .bind(customer.owner_id.as_deref())
    .bind(customer.created_at.as_str())
    .bind(customer.updated_at.as_str())
    .execute(&mut *connection)
    .await
    .map_err(conflict_or)?;
    let changes = json!({"new": event_data(&customer)});
    viewer
        .audit(
            connection,
            Action::Create,
            Resource::Customer,
            &customer.id,
            Some(changes),
        )
        .await?;
    published
        .append(
            connection,
            "customer.events",
            "CUSTOMER_CREATED",
            &customer.id,
            event_data(&customer),
        )
        .await?;
    super::read_back(connection, &customer.id).await
}

/// Checks fields before a create (for 400s before the transaction starts).
pub fn validate(fields: &CustomerFields, creating: bool) -> Result<(), CrmError> {
    check(fields, creating).map(|_| ())
}

/// A visible, not deleted customer.
pub async fn get(
    connection: &mut Conn<'_>,
    viewer: &Viewer,
    id: &str,
) -> Result<Customer, CrmError> {
    let mut statement = StatementBuilder::new(format!(
        "SELECT {} FROM customers WHERE deleted_at IS NULL AND id = ",
        selected(connection.dialect())
    ));
    statement.push_param(id.to_string());
    viewer.restrict(&mut statement, "owner_id");
    fetch_visible(connection, statement, "customer").await
}

/// Visible customers, newest first.
pub async fn list(
    pool: &Pool,
    viewer: &Viewer,
    search: Option<&str>,
    paging: Paging,
) -> Result<super::JsonPage<Customer>, CrmError> {
    let pattern = match search.map(str::trim).filter(|search| !search.is_empty()) {
        Some(search) if search.chars().count() > MAX_SEARCH => {
            let mut problems = Problems::default();
            problems.add("search", format!("must be at most {MAX_SEARCH} characters"));
            return Err(CrmError::Invalid(problems));
        }
        Some(search) => Some(like_pattern(search)),
        None => None,
    };
    let filter = |select: &str| {
        let mut statement = StatementBuilder::new(format!(
            "SELECT {select} FROM customers WHERE deleted_at IS NULL"
        ));
        viewer.restrict(&mut statement, "owner_id");
        if let Some(pattern) = &pattern {
            statement.push(" AND (LOWER(name) LIKE ");
            statement.push_param(pattern.clone());
            statement.push(" ESCAPE '\\' OR LOWER(email) LIKE ");
            statement.push_param(pattern.clone());
            statement.push(" ESCAPE '\\')");
        }
        statement
    };
    super::fetch_json_page(
        pool,
        filter,
        &selected(pool.dialect()),
        FIELDS,
        "created_at DESC, id DESC",
        paging,
    )
    .await
}

/// Longest `search` text.
const MAX_SEARCH: usize = 200;

/// A `LIKE` pattern matching any text that contains `search`, compared in lower case, with
/// `%`, `_` and the escape character itself taken literally.
fn like_pattern(search: &str) -> String {
    let mut pattern = String::from("%");
    for character in search.to_lowercase().chars() {
        if matches!(character, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

/// Changes the given fields of a visible customer and announces `CUSTOMER_UPDATED`.
pub async fn update(
    connection: &mut Conn<'_>,
    published: &mut Published,
    viewer: &Viewer,
    id: &str,
    fields: &CustomerFields,
) -> Result<Customer, CrmError> {
    viewer.require_changes()?;
    let fields = check(fields, false)?;
    let mut customer = get(connection, viewer, id).await?;
    let before = event_data(&customer);
    if let Some(name) = fields.name {
        customer.name = name;
    }
    if let Some(email) = fields.email {
        customer.email = email;
    }
    if let Some(phone) = fields.phone {
        customer.phone = phone;
    }
    if let Some(industry) = fields.industry {
        customer.industry = industry;
    }
    if let Some(size) = fields.size {
        customer.size = size;
    }
    if let Some(address) = fields.address {
        customer.address = address;
    }
    if let Some(profile) = fields.investment_profile {
        customer.investment_profile = profile;
    }
    if let Some(risk) = fields.risk_tolerance {
        customer.risk_tolerance = risk;
    }
    if let Some(experience) = fields.investment_experience {
        customer.investment_experience = experience;
    }
    if let Some(owner) = fields.owner_id {
        if customer.owner_id.as_deref() != Some(owner.as_str()) {
            check_owner(connection, viewer, &owner).await?;
        }
        customer.owner_id = Some(owner);
    }
    customer.updated_at = now_rfc3339();
    db::query(
        "UPDATE customers SET name = $1, email = $2, phone = $3, industry = $4, size = $5, \
         address = $6, owner_id = $7, updated_at = $8, investment_profile = $10, \
         risk_tolerance = $11, investment_experience = $12 WHERE id = $9",
    )
    .bind(customer.name.as_str())
    .bind(customer.email.as_deref())
    .bind(customer.phone.as_deref())
    .bind(customer.industry.as_deref())
    .bind(customer.size.as_deref())
    .bind(customer.address.as_deref())
    .bind(customer.owner_id.as_deref())
    .bind(customer.updated_at.as_str())
    .bind(customer.id.as_str())
    .bind(customer.investment_profile.as_deref())
    .bind(customer.risk_tolerance)
    .bind(customer.investment_experience.as_deref())
    .execute(&mut *connection)
    .await
    .map_err(conflict_or)?;
    let changes = json!({"before": before, "after": event_data(&customer)});
    viewer
        .audit(
            connection,
            Action::Update,
            Resource::Customer,
            &customer.id,
            Some(changes),
        )
        .await?;
    published
        .append(
            connection,
            "customer.events",
            "CUSTOMER_UPDATED",
            &customer.id,
            event_data(&customer),
        )
        .await?;
    super::read_back(connection, &customer.id).await
}

/// Soft-deletes a visible customer and announces `CUSTOMER_DELETED`.
pub async fn delete(
    connection: &mut Conn<'_>,
    published: &mut Published,
    viewer: &Viewer,
    id: &str,
) -> Result<(), CrmError> {
    viewer.require_changes()?;
    let customer = get(connection, viewer, id).await?;
    let now = now_rfc3339();
    // Only a live row: of two deletes at once, the second finds nothing (404) and audits
    // nothing.
    let done = db::query(
        "UPDATE customers SET deleted_at = $1, updated_at = $1 \
         WHERE id = $2 AND deleted_at IS NULL",
    )
    .bind(now.as_str())
    .bind(customer.id.as_str())
    .execute(&mut *connection)
    .await?;
    if done.rows_affected() != 1 {
        return Err(CrmError::NotFound("customer"));
    }
    viewer
        .audit(
            connection,
            Action::Delete,
            Resource::Customer,
            &customer.id,
            None,
        )
        .await?;
    published
        .append(
            connection,
            "customer.events",
            "CUSTOMER_DELETED",
            &customer.id,
            json!({"customerId": customer.id}),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod search_tests {
    use super::like_pattern;

    #[test]
    fn search_text_is_taken_literally_in_lower_case() {
        assert_eq!(like_pattern("Acme"), "%acme%");
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
