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
        let email = normalise_email(value);
        if let Some(hidden) = email.chars().find(|character| is_invisible(*character)) {
            self.add(
                field,
                format!(
                    "must not contain invisible, control or direction characters (found U+{:04X})",
                    u32::from(hidden)
                ),
            );
        } else if !email_address::EmailAddress::is_valid(&email) || email.len() > 254 {
            self.add(field, "must be an email address like name@example.com");
        }
        email
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

    /// The upper bound of a period: like [`Self::timestamp`], but a bare date means the whole
    /// of that day (its last millisecond), as a person asking "to 2026-12-06" means.
    pub fn timestamp_until(&mut self, field: &str, value: &str) -> String {
        match chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
            Ok(_) => self.timestamp(field, &format!("{value}T23:59:59.999Z")),
            Err(_) => self.timestamp(field, value),
        }
    }

    /// A finite, non-negative amount.
    pub fn amount(&mut self, field: &str, value: f64) -> f64 {
        if !value.is_finite() || value < 0.0 {
            self.add(field, "must be a non-negative number");
        }
        value
    }
}

/// An email as it is stored and compared: trimmed, in Unicode NFC (so a precomposed and a
/// decomposed `é` are one address), lowercase (so uniqueness ignores case).
pub fn normalise_email(value: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    value.trim().nfc().collect::<String>().to_lowercase()
}

/// A character that shows as nothing, or changes how its neighbours show: controls (U+0085),
/// format characters (U+200B, the bidi overrides U+202A–U+202E and isolates), separators
/// other than a plain space, and code points with no character. An address containing one
/// would look exactly like another in every list.
fn is_invisible(character: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};
    matches!(
        character.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::SpaceSeparator
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::Surrogate
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upper_bound_date_means_the_whole_day() {
        let mut problems = Problems::default();
        assert_eq!(
            problems.timestamp_until("to", "2026-12-06"),
            "2026-12-06T23:59:59.999Z"
        );
        assert_eq!(
            problems.timestamp_until("to", "2026-12-06T10:00:00+09:00"),
            "2026-12-06T01:00:00.000Z"
        );
        assert!(problems.0.is_empty());
        problems.timestamp_until("to", "2026-13-45");
        assert_eq!(
            problems.summary(),
            "to: must be an RFC 3339 timestamp or a YYYY-MM-DD date"
        );
    }

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
        assert_eq!(
            problems.email("email", "Rene\u{301}@example.com"),
            "ren\u{e9}@example.com"
        );
        assert!(problems.into_result().is_ok());
    }

    #[test]
    fn look_alike_emails_are_refused_with_the_character() {
        for (email, code) in [
            ("\u{200B}kate@example.com", "U+200B"),
            ("ka\u{0085}te@example.com", "U+0085"),
            ("kate@\u{202E}moc.elpmaxe", "U+202E"),
            ("kate\u{2066}@example.com", "U+2066"),
            ("kate\u{00A0}x@example.com", "U+00A0"),
            ("kate\u{00AD}@example.com", "U+00AD"),
        ] {
            let mut problems = Problems::default();
            problems.email("email", email);
            let problem = &problems.0[0];
            assert_eq!(problem.field, "email", "{email:?}");
            assert!(
                problem.message.contains(code),
                "{email:?}: {}",
                problem.message
            );
        }
    }
}
