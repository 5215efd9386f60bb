//! The original CRM's tables (its Prisma schema's `users`, `customers`, `meetings`, `tasks`,
//! `approval_requests`, `notifications`, `audit_logs`) and how a row of each becomes a row of
//! ours.
//!
//! A row arrives as the JSON object PostgreSQL's `row_to_json` makes of it, which is also the
//! JSON lines format: the original's camelCase column names, enums as text, timestamps as
//! `2025-10-08T12:34:56.789` (Prisma stores UTC without a zone) or RFC 3339. Every value is
//! checked as the API would check it before anything is written.

use serde_json::{Map, Value};

use crate::auth::Role;
use crate::crm::{customers, tasks, Problems};
use crate::store::db::{IntoParam, Param};

/// A table of the original CRM, in the order they are imported (what a row points at first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OriginalTable {
    /// `users`.
    Users,
    /// `customers`.
    Customers,
    /// `meetings`.
    Meetings,
    /// `tasks`.
    Tasks,
    /// `approval_requests`.
    ApprovalRequests,
    /// `notifications`.
    Notifications,
    /// `audit_logs`.
    AuditLogs,
}

impl OriginalTable {
    /// Every table, in import order.
    pub const ALL: [Self; 7] = [
        Self::Users,
        Self::Customers,
        Self::Meetings,
        Self::Tasks,
        Self::ApprovalRequests,
        Self::Notifications,
        Self::AuditLogs,
    ];

    /// Every table's name, for messages.
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    /// Our columns of this table that hold a user id.
    pub fn user_columns(self) -> &'static [&'static str] {
        match self {
            Self::Users => &[],
            Self::Customers => &["owner_id"],
            Self::Meetings => &["sales_id"],
            Self::Tasks => &["assignee_id"],
            Self::ApprovalRequests => &["requester_id", "approver_id"],
            Self::Notifications | Self::AuditLogs => &["user_id"],
        }
    }

    /// The original's table name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Customers => "customers",
            Self::Meetings => "meetings",
            Self::Tasks => "tasks",
            Self::ApprovalRequests => "approval_requests",
            Self::Notifications => "notifications",
            Self::AuditLogs => "audit_logs",
        }
    }

    /// The table called `name`.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|table| table.name() == name)
    }

    /// Our table and its columns, in the order of [`Self::convert`]'s values.
    pub fn target(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Self::Users => (
                "users",
                &[
                    "id",
                    "email",
                    "password_hash",
                    "name",
                    "role",
                    "created_at",
                    "updated_at",
                ],
            ),
            Self::Customers => (
                "customers",
                &[
                    "id",
                    "name",
                    "email",
                    "phone",
                    "address",
                    "investment_profile",
                    "risk_tolerance",
                    "investment_experience",
                    "owner_id",
                    "created_at",
                    "updated_at",
                    "deleted_at",
                ],
            ),
            Self::Meetings => (
                "meetings",
                &[
                    "id",
                    "customer_id",
                    "sales_id",
                    "date",
                    "summary",
                    "next_action",
                    "next_action_date",
                    "created_at",
                    "updated_at",
                ],
            ),
            Self::Tasks => (
                "tasks",
                &[
                    "id",
                    "assignee_id",
                    "customer_id",
                    "title",
                    "description",
                    "due_date",
                    "status",
                    "priority",
                    "completed_at",
                    "created_at",
                    "updated_at",
                ],
            ),
            Self::ApprovalRequests => (
                "approvals",
                &[
                    "id",
                    "requester_id",
                    "approver_id",
                    "customer_id",
                    "title",
                    "amount",
                    "status",
                    "comment",
                    "requested_at",
                    "decided_at",
                ],
            ),
            Self::Notifications => (
                "notifications",
                &[
                    "id",
                    "user_id",
                    "type",
                    "title",
                    "message",
                    "link",
                    "read",
                    "created_at",
                    "read_at",
                ],
            ),
            Self::AuditLogs => (
                "audit_log",
                &[
                    "id",
                    "user_id",
                    "action",
                    "resource_type",
                    "resource_id",
                    "changes",
                    "ip_address",
                    "recorded_at",
                ],
            ),
        }
    }

    /// The values of our row for `row`, in [`Self::target`]'s column order, or every problem
    /// with it.
    pub fn convert(self, row: &Map<String, Value>) -> Result<Vec<Param<'static>>, Problems> {
        let mut fields = Fields {
            row,
            problems: Problems::default(),
        };
        let values = match self {
            Self::Users => {
                let password = fields.required("password");
                if let Err(problem) = crate::auth::password::check_stored(&password) {
                    fields.problems.add("password", problem.to_string());
                }
                let role = fields.required("role");
                if role.parse::<Role>().is_err() {
                    fields
                        .problems
                        .add("role", "must be ADMIN, MANAGER, SALES, COMPLIANCE or USER");
                }
                let email = fields.required("email");
                vec![
                    fields.required("id").into_param(),
                    fields.problems.email("email", &email).into_param(),
                    password.into_param(),
                    fields.required("name").into_param(),
                    role.into_param(),
                    fields.instant("createdAt").into_param(),
                    fields.instant("updatedAt").into_param(),
                ]
            }
            Self::Customers => {
                let email = fields.optional("email");
                let email = email.map(|email| fields.problems.email("email", &email));
                let profile = fields.optional("investmentProfile");
                if let Some(profile) = &profile {
                    fields.problems.one_of(
                        "investmentProfile",
                        profile,
                        customers::INVESTMENT_PROFILES,
                    );
                }
                let risk = fields.integer("riskTolerance");
                if risk.is_some_and(|risk| !(1..=10).contains(&risk)) {
                    fields
                        .problems
                        .add("riskTolerance", "must be a whole number from 1 to 10");
                }
                vec![
                    fields.required("id").into_param(),
                    fields.required("name").into_param(),
                    email.into_param(),
                    fields.optional("phone").into_param(),
                    fields.optional("address").into_param(),
                    profile.into_param(),
                    risk.into_param(),
                    fields.optional("investmentExperience").into_param(),
                    fields.optional("assignedSalesId").into_param(),
                    fields.instant("createdAt").into_param(),
                    fields.instant("updatedAt").into_param(),
                    fields.optional_instant("deletedAt").into_param(),
                ]
            }
            Self::Meetings => vec![
                fields.required("id").into_param(),
                fields.required("customerId").into_param(),
                fields.required("salesId").into_param(),
                fields.required_instant("date").into_param(),
                fields.required("summary").into_param(),
                fields.optional("nextAction").into_param(),
                fields.optional_instant("nextActionDate").into_param(),
                fields.instant("createdAt").into_param(),
                fields.instant("updatedAt").into_param(),
            ],
            Self::Tasks => {
                let status = fields.one_of("status", tasks::STATUSES, "TODO");
                let priority = fields.one_of("priority", tasks::PRIORITIES, "MEDIUM");
                vec![
                    fields.required("id").into_param(),
                    fields.required("userId").into_param(),
                    fields.optional("customerId").into_param(),
                    fields.required("title").into_param(),
                    fields.optional("description").into_param(),
                    fields.optional_instant("dueDate").into_param(),
                    status.into_param(),
                    priority.into_param(),
                    fields.optional_instant("completedAt").into_param(),
                    fields.instant("createdAt").into_param(),
                    fields.instant("updatedAt").into_param(),
                ]
            }
            Self::ApprovalRequests => {
                let amount = fields.number("amount");
                if amount.is_some_and(|amount| !amount.is_finite() || amount < 0.0) {
                    fields
                        .problems
                        .add("amount", "must be a non-negative number");
                }
                let status = fields.one_of(
                    "status",
                    &["PENDING", "APPROVED", "REJECTED", "RECALLED"],
                    "PENDING",
                );
                vec![
                    fields.required("id").into_param(),
                    fields.required("requesterId").into_param(),
                    fields.optional("approverId").into_param(),
                    fields.optional("customerId").into_param(),
                    fields.required("productName").into_param(),
                    amount.into_param(),
                    status.into_param(),
                    fields.optional("comment").into_param(),
                    fields.instant("requestedAt").into_param(),
                    fields.optional_instant("processedAt").into_param(),
                ]
            }
            Self::Notifications => {
                let read = match row.get("isRead") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(read)) => *read,
                    Some(_) => {
                        fields.problems.add("isRead", "must be true or false");
                        false
                    }
                };
                vec![
                    fields.required("id").into_param(),
                    fields.required("userId").into_param(),
                    fields.required("type").into_param(),
                    fields.required("title").into_param(),
                    fields.required("message").into_param(),
                    fields.optional("link").into_param(),
                    i64::from(read).into_param(),
                    fields.instant("createdAt").into_param(),
                    fields.optional_instant("readAt").into_param(),
                ]
            }
            Self::AuditLogs => {
                // Prisma's `Json?`: an object, a string or nothing, kept as JSON text.
                let changes = match row.get("changes") {
                    None | Some(Value::Null) => None,
                    Some(changes) => Some(changes.to_string()),
                };
                vec![
                    fields.required("id").into_param(),
                    fields.required("userId").into_param(),
                    fields.required("action").into_param(),
                    fields.required("resourceType").into_param(),
                    fields.optional("resourceId").into_param(),
                    changes.into_param(),
                    fields.optional("ipAddress").into_param(),
                    fields.required_instant("timestamp").into_param(),
                ]
            }
        };
        if fields.problems.0.is_empty() {
            Ok(values)
        } else {
            Err(fields.problems)
        }
    }
}

/// The fields of one row, and the problems found reading them.
struct Fields<'a> {
    row: &'a Map<String, Value>,
    problems: Problems,
}

impl Fields<'_> {
    /// A text field that may be absent or null.
    fn optional(&mut self, field: &str) -> Option<String> {
        match self.row.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if text.contains('\0') => {
                self.problems.add(field, "must not contain NUL characters");
                None
            }
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => {
                self.problems.add(field, "must be text");
                None
            }
        }
    }

    /// A text field that must be there and not empty.
    fn required(&mut self, field: &str) -> String {
        match self.optional(field) {
            Some(text) if !text.trim().is_empty() => text,
            _ => {
                self.problems.add(field, "is required");
                String::new()
            }
        }
    }

    /// A text field that must be one of `allowed`, `default` when absent.
    fn one_of(&mut self, field: &str, allowed: &[&str], default: &str) -> String {
        match self.optional(field) {
            Some(value) => self.problems.one_of(field, &value, allowed),
            None => default.to_owned(),
        }
    }

    /// A whole number that may be absent or null.
    fn integer(&mut self, field: &str) -> Option<i64> {
        match self.row.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Number(number)) if number.as_i64().is_some() => number.as_i64(),
            Some(_) => {
                self.problems.add(field, "must be a whole number");
                None
            }
        }
    }

    /// A number that may be absent or null.
    fn number(&mut self, field: &str) -> Option<f64> {
        match self.row.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Number(number)) => number.as_f64(),
            Some(_) => {
                self.problems.add(field, "must be a number");
                None
            }
        }
    }

    /// A timestamp that may be absent or null, as RFC 3339 in UTC with milliseconds.
    fn optional_instant(&mut self, field: &str) -> Option<String> {
        let text = self.optional(field)?;
        if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f") {
            // Prisma's `timestamp(3)` columns hold UTC without saying so.
            return Some(
                naive
                    .and_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            );
        }
        Some(self.problems.timestamp(field, &text))
    }

    /// A timestamp that must be there.
    fn required_instant(&mut self, field: &str) -> String {
        self.optional_instant(field).unwrap_or_else(|| {
            self.problems.add(field, "is required");
            String::new()
        })
    }

    /// A timestamp the original always set (`createdAt`); the time of the import if absent.
    fn instant(&mut self, field: &str) -> String {
        self.optional_instant(field)
            .unwrap_or_else(crate::template::now_rfc3339)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn convert(table: OriginalTable, row: Value) -> Result<Vec<Param<'static>>, String> {
        table
            .convert(row.as_object().unwrap())
            .map_err(|problems| problems.summary())
    }

    #[test]
    fn every_table_converts_a_row_to_as_many_values_as_it_has_columns() {
        let rows = [
            json!({"id": "u1", "email": "A@Example.com", "password": bcrypt::hash("x", 4).unwrap(), "name": "A", "role": "SALES"}),
            json!({"id": "c1", "name": "C", "assignedSalesId": "u1", "riskTolerance": 5}),
            json!({"id": "m1", "customerId": "c1", "salesId": "u1", "date": "2025-10-08T09:00:00.000", "summary": "s"}),
            json!({"id": "t1", "userId": "u1", "title": "t", "dueDate": "2025-10-09T00:00:00.000"}),
            json!({"id": "a1", "requesterId": "u1", "customerId": "c1", "productName": "P", "amount": 1.5}),
            json!({"id": "n1", "userId": "u1", "type": "SYSTEM", "title": "t", "message": "m", "isRead": true}),
            json!({"id": "l1", "userId": "u1", "action": "LOGIN", "resourceType": "User", "changes": {"a": 1}, "timestamp": "2025-10-08T09:00:00.000"}),
        ];
        for (table, row) in OriginalTable::ALL.into_iter().zip(rows) {
            let values = convert(table, row).unwrap();
            assert_eq!(values.len(), table.target().1.len(), "{table:?}");
        }
    }

    #[test]
    fn prisma_timestamps_are_utc_and_emails_are_normalised() {
        let values = convert(
            OriginalTable::Users,
            json!({"id": "u1", "email": " A@Example.com", "password": bcrypt::hash("x", 4).unwrap(), "name": "A",
                   "role": "ADMIN", "createdAt": "2025-10-08T12:34:56.7"}),
        )
        .unwrap();
        assert_eq!(values[1], Param::Text("a@example.com".into()));
        assert_eq!(values[5], Param::Text("2025-10-08T12:34:56.700Z".into()));
    }

    #[test]
    fn bad_values_are_refused_with_every_field_named() {
        let problems = convert(
            OriginalTable::Customers,
            json!({"id": "c1", "name": "", "email": "nope", "riskTolerance": 42,
                   "investmentProfile": "reckless", "createdAt": "yesterday"}),
        )
        .unwrap_err();
        for field in [
            "name",
            "email",
            "riskTolerance",
            "investmentProfile",
            "createdAt",
        ] {
            assert!(problems.contains(field), "{field}: {problems}");
        }
        let problems = convert(
            OriginalTable::Users,
            json!({"id": "u1", "email": "a@example.com", "password": "plain", "name": "A", "role": "ROOT"}),
        )
        .unwrap_err();
        assert!(
            problems.contains("password") && problems.contains("role"),
            "{problems}"
        );
    }
}
