//! Records another record points at, nested in it as the original CRM's API answered them:
//! a task's `customer` and `user`, a customer's `assignedSales`, an approval's `customer`,
//! `requester` and `approver`. Its frontend's pages read those objects (`task.user.name`).
//!
//! Each is one correlated subquery in the record's `SELECT`, building the object as JSON text
//! on either database, so a list is still one statement and its page is rendered as before
//! (`store::db::page::json`). A pointer that is NULL, or names no row, gives `null`.

use crate::store::Dialect;

/// One nested record: the column `alias` of a record's `SELECT`, built from the row of `table`
/// whose `id` is the record's `pointer` column.
#[derive(Debug, Clone, Copy)]
pub struct Reference {
    /// The column's name in the `SELECT`, also the record's field.
    pub alias: &'static str,
    /// The table pointed into.
    pub table: &'static str,
    /// The pointing column, qualified with the record's table (`tasks.assignee_id`).
    pub pointer: &'static str,
    /// The nested object's keys and the columns they show.
    pub keys: &'static [(&'static str, &'static str)],
}

/// A user as a record nests them.
pub const USER_KEYS: &[(&str, &str)] = &[("id", "id"), ("name", "name"), ("email", "email")];

/// A customer as a record nests them.
pub const CUSTOMER_KEYS: &[(&str, &str)] = &[
    ("id", "id"),
    ("name", "name"),
    ("email", "email"),
    ("investmentProfile", "investment_profile"),
    ("riskTolerance", "risk_tolerance"),
];

impl Reference {
    /// `(SELECT <object> FROM <table> WHERE id = <pointer>) AS "<alias>"`.
    fn sql(&self, dialect: Dialect) -> String {
        let pairs: Vec<String> = self
            .keys
            .iter()
            .map(|(key, column)| format!("'{key}', nested.{column}"))
            .collect();
        let object = match dialect {
            Dialect::Sqlite => format!("json_object({})", pairs.join(", ")),
            Dialect::Postgres => format!("json_build_object({})::text", pairs.join(", ")),
        };
        format!(
            "(SELECT {object} FROM {} AS nested WHERE nested.id = {}) AS \"{}\"",
            self.table, self.pointer, self.alias
        )
    }
}

/// A record's `SELECT` list: its own `columns`, then each of `references`.
pub fn selected(columns: &str, references: &[Reference], dialect: Dialect) -> String {
    let mut selected = columns.to_owned();
    for reference in references {
        selected.push_str(", ");
        selected.push_str(&reference.sql(dialect));
    }
    selected
}

/// A user nested in a record, for the OpenAPI document.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UserReference {
    /// Id.
    id: String,
    /// Display name.
    name: String,
    /// Email address.
    email: String,
}

/// A customer nested in a record, for the OpenAPI document.
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct CustomerReference {
    /// Id.
    id: String,
    /// Name.
    name: String,
    /// Email.
    email: Option<String>,
    /// conservative, moderate or aggressive.
    investment_profile: Option<String>,
    /// 1 to 10.
    risk_tolerance: Option<i64>,
}
