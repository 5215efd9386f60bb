//! Checked SQL identifiers and route names.
//!
//! Route files name tables and columns; those names end up in SQL text, so they are parsed once
//! into [`Ident`], which can only hold `[A-Za-z_][A-Za-z0-9_]*` (at most 63 bytes, PostgreSQL's
//! limit) and is always emitted double-quoted. Values never become SQL text: they are bound.

use std::fmt;

use thiserror::Error;

/// Why a name was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdentError {
    /// The name is empty.
    #[error("identifier is empty")]
    Empty,
    /// The name is longer than 63 bytes.
    #[error("identifier {0:?} is longer than 63 characters")]
    TooLong(String),
    /// The name has a character outside `[A-Za-z0-9_]` or starts with a digit.
    #[error(
        "identifier {0:?} may only contain letters, digits and '_' and must not start with a digit"
    )]
    Invalid(String),
}

/// A table or column name that is safe to splice into SQL (quoted).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

impl Ident {
    /// Parses a table or column name.
    pub fn parse(name: &str) -> Result<Self, IdentError> {
        if name.is_empty() {
            return Err(IdentError::Empty);
        }
        if name.len() > 63 {
            return Err(IdentError::TooLong(name.to_owned()));
        }
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(IdentError::Invalid(name.to_owned()));
        }
        Ok(Self(name.to_owned()))
    }

    /// The bare name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a quoted SQL identifier. Quoting keeps reserved words (`order`, `user`) usable.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a route name was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("route name {0:?} must be 1-100 characters of letters, digits, '-', '_' or '.'")]
pub struct RouteNameError(String);

/// A route's unique name: used in URLs, logs and idempotency keys, so kept URL- and log-safe.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct RouteName(String);

impl RouteName {
    /// Parses a route name.
    pub fn parse(name: &str) -> Result<Self, RouteNameError> {
        let ok = !name.is_empty()
            && name.len() <= 100
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(RouteNameError(name.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names_and_quotes_them() {
        let ident = Ident::parse("due_soon_notified_at").unwrap();
        assert_eq!(ident.quoted(), "\"due_soon_notified_at\"");
        assert_eq!(Ident::parse("_x1").unwrap().as_str(), "_x1");
    }

    #[test]
    fn refuses_anything_that_could_carry_sql() {
        for bad in [
            "customers; DROP TABLE users",
            "a\"b",
            "1abc",
            "name--",
            "na me",
            "ïd",
            "t.col",
        ] {
            assert_eq!(
                Ident::parse(bad),
                Err(IdentError::Invalid(bad.to_owned())),
                "{bad}"
            );
        }
        assert_eq!(Ident::parse(""), Err(IdentError::Empty));
        assert!(matches!(
            Ident::parse(&"a".repeat(64)),
            Err(IdentError::TooLong(_))
        ));
    }

    #[test]
    fn route_names_are_url_safe() {
        assert!(RouteName::parse("user-creates-customer.v2").is_ok());
        assert!(RouteName::parse("a/b").is_err());
        assert!(RouteName::parse("").is_err());
    }
}
