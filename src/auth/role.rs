//! The roles of the CRM: crm-router's USER, MANAGER and ADMIN, and the original CRM's SALES
//! and COMPLIANCE.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a user may do. Each capability is a method, since the roles are not a ladder:
/// COMPLIANCE sees everything and decides approvals, but changes no record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Sees and edits what they own. crm-router's first name for SALES, kept for the setup
    /// guide and existing users: the same permissions.
    User,
    /// The original CRM's salesperson: sees and edits what they own.
    Sales,
    /// Reads every record and the audit log and decides approvals; changes no record.
    Compliance,
    /// Also sees their team's data and decides approvals.
    Manager,
    /// Sees everything; may create any role.
    Admin,
}

impl Role {
    /// Every role, in the order the documentation lists them.
    pub const ALL: [Role; 5] = [
        Self::User,
        Self::Sales,
        Self::Compliance,
        Self::Manager,
        Self::Admin,
    ];

    /// As stored and sent: `USER`, `SALES`, `COMPLIANCE`, `MANAGER`, `ADMIN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Sales => "SALES",
            Self::Compliance => "COMPLIANCE",
            Self::Manager => "MANAGER",
            Self::Admin => "ADMIN",
        }
    }

    /// Whether anyone may sign up with this role (the others need an ADMIN).
    pub fn is_self_service(self) -> bool {
        matches!(self, Self::User | Self::Sales)
    }

    /// Whether this role may decide approval requests (never its own).
    pub fn decides_approvals(self) -> bool {
        matches!(self, Self::Manager | Self::Compliance | Self::Admin)
    }

    /// Whether this role reads every record, whoever owns it.
    pub fn sees_everything(self) -> bool {
        matches!(self, Self::Compliance | Self::Admin)
    }

    /// Whether this role may create, change or delete records.
    pub fn changes_records(self) -> bool {
        self != Self::Compliance
    }

    /// Whether users may be put in a team led by this role (`managerId`).
    pub fn leads_a_team(self) -> bool {
        matches!(self, Self::Manager | Self::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| {
                format!("unknown role {text:?}; use USER, SALES, COMPLIANCE, MANAGER or ADMIN")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_print() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
        assert!("user".parse::<Role>().is_err());
    }

    #[test]
    fn capabilities_follow_the_original_crm() {
        let with = |capability: fn(Role) -> bool| -> Vec<Role> {
            Role::ALL
                .into_iter()
                .filter(|role| capability(*role))
                .collect()
        };
        assert_eq!(with(Role::is_self_service), [Role::User, Role::Sales]);
        assert_eq!(
            with(Role::decides_approvals),
            [Role::Compliance, Role::Manager, Role::Admin]
        );
        assert_eq!(with(Role::sees_everything), [Role::Compliance, Role::Admin]);
        assert_eq!(
            with(Role::changes_records),
            [Role::User, Role::Sales, Role::Manager, Role::Admin]
        );
        assert_eq!(with(Role::leads_a_team), [Role::Manager, Role::Admin]);
    }
}
