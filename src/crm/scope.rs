//! Who is asking, and which rows that lets them see.
//!
//! A USER or SALES sees rows they own; a MANAGER also sees rows owned by their team (users
//! whose `manager_id` is the manager); an ADMIN and a COMPLIANCE user see everything, and
//! COMPLIANCE changes nothing. Rows outside the scope are reported as not found, so their
//! existence does not leak.

use crate::auth::Role;
use crate::store::sql::StatementBuilder;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// User id.
    pub id: String,
    /// Current role (read from the database on every request, not from the token).
    pub role: Role,
    /// The address the request came from, for the audit log (`None` off the API).
    pub address: Option<std::net::IpAddr>,
}

impl Viewer {
    /// Refuses a COMPLIANCE user's write: they read every record and change none.
    pub fn require_changes(&self) -> Result<(), super::CrmError> {
        if self.role.changes_records() {
            Ok(())
        } else {
            Err(super::CrmError::Forbidden(format!(
                "a {} user reads records but does not change them",
                self.role
            )))
        }
    }

    /// Appends ` AND <column is visible>` to `statement`. `column` is a fixed column name.
    pub fn restrict(&self, statement: &mut StatementBuilder, column: &'static str) {
        match self.role {
            Role::Admin | Role::Compliance => {}
            Role::Manager => {
                statement.push(&format!(" AND ({column} = "));
                statement.push_param(self.id.to_string());
                statement.push(&format!(
                    " OR {column} IN (SELECT id FROM users WHERE manager_id = "
                ));
                statement.push_param(self.id.to_string());
                statement.push("))");
            }
            Role::User | Role::Sales => {
                statement.push(&format!(" AND {column} = "));
                statement.push_param(self.id.to_string());
            }
        }
    }
}
