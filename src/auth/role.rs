//! The three roles of the CRM.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a user may do. Ordered: `User < Manager < Admin`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Sees and edits what they own.
    User,
    /// Also sees their team's data and decides approvals.
    Manager,
    /// Sees everything; may create managers and admins.
    Admin,
}

impl Role {
    /// As stored and sent: `USER`, `MANAGER`, `ADMIN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Manager => "MANAGER",
            Self::Admin => "ADMIN",
        }
    }

    /// Whether this role may decide approvals and see team data.
    pub fn is_manager_or_admin(self) -> bool {
        self >= Self::Manager
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
        match text {
            "USER" => Ok(Self::User),
            "MANAGER" => Ok(Self::Manager),
            "ADMIN" => Ok(Self::Admin),
            other => Err(format!(
                "unknown role {other:?}; use USER, MANAGER or ADMIN"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_order_and_print() {
        for role in [Role::User, Role::Manager, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("user".parse::<Role>().is_err());
        assert!(Role::Admin.is_manager_or_admin() && !Role::User.is_manager_or_admin());
    }
}
