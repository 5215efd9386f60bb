//! Field-by-field validation that reports every problem, not the first.

use serde::Serialize;

use super::CrmError;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    /// The field as the client named it (`email`, `dueDate`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// All problems found in one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<FieldProblem>);

impl Problems {
    /// Records a problem.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldProblem {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// `field: message; ...`
    pub fn summary(&self) -> String {
        self.0
            .iter()
            .map(|problem| format!("{}: {}", problem.field, problem.message))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// `Ok` when nothing was recorded.
    pub fn into_result(self) -> Result<(), CrmError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(CrmError::Invalid(self))
        }
    }

    /// A required text: trimmed, non-empty, at most `max` characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) -> String {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            self.add(field, "must not be empty");
        } else if trimmed.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        }
        trimmed.to_owned()
    }

    /// An optional text: trimmed; empty becomes `None`.
    pub fn optional_text(
        &mut self,
        field: &str,
        value: Option<&str>,
        max: usize,
    ) -> Option<String> {
        let trimmed = value?.trim();
        if trimmed.is_empty() {
            return None;
        }
        if trimmed.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        }
        Some(trimmed.to_owned())
    }

    /// An email address, lower-cased.
    pub fn email(&mut self, field: &str, value: &str) -> String {
        let trimmed = value.trim();
        if !email_address::EmailAddress::is_valid(trimmed) || trimmed.len() > 254 {
            self.add(field, "must be an email address like name@example.com");
        }
        trimmed.to_lowercase()
    }

    /// One of the allowed words.
    pub fn one_of(&mut self, field: &str, value: &str, allowed: &[&str]) -> String {
        if !allowed.contains(&value) {
            self.add(field, format!("must be one of {}", allowed.join(", ")));
        }
        value.to_owned()
    }

    /// An RFC 3339 timestamp or a `YYYY-MM-DD` date, normalised to RFC 3339 UTC.
    pub fn timestamp(&mut self, field: &str, value: &str) -> String {
        if let Ok(parsed) = chrono::DateTime::parse_from_rfc3339(value) {
            return parsed
                .with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        }
        if let Ok(date) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
            return date
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        }
        self.add(field, "must be an RFC 3339 timestamp or a YYYY-MM-DD date");
        value.to_owned()
    }

    /// A finite, non-negative amount.
    pub fn amount(&mut self, field: &str, value: f64) -> f64 {
        if !value.is_finite() || value < 0.0 {
            self.add(field, "must be a non-negative number");
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported() {
        let mut problems = Problems::default();
        problems.text("name", "  ", 10);
        problems.email("email", "not-an-email");
        problems.one_of("size", "HUGE", &["SMALL", "LARGE"]);
        problems.timestamp("dueDate", "tomorrow");
        problems.amount("amount", -1.0);
        let fields: Vec<&str> = problems.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["name", "email", "size", "dueDate", "amount"]);
        assert!(problems.into_result().is_err());
    }

    #[test]
    fn good_values_are_normalised() {
        let mut problems = Problems::default();
        assert_eq!(
            problems.email("email", " Kafka-Test@Example.com "),
            "kafka-test@example.com"
        );
        assert_eq!(
            problems.timestamp("d", "2026-12-01"),
            "2026-12-01T00:00:00.000Z"
        );
        assert_eq!(
            problems.timestamp("d", "2026-12-01T09:00:00+09:00"),
            "2026-12-01T00:00:00.000Z"
        );
        assert_eq!(problems.optional_text("p", Some("  "), 5), None);
        assert!(problems.into_result().is_ok());
    }
}
