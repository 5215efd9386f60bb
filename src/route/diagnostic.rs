//! Problems found while loading routes and schemas, each with a place a user can jump to.

use std::fmt;
use std::path::PathBuf;

/// One problem in a route or schema file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as the user named it (relative to where they ran the command).
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A problem at a known position.
    pub fn at(file: impl Into<PathBuf>, position: Position, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: position.line,
            column: position.column,
            message: message.into(),
            hint: None,
        }
    }

    /// serde_yaml's error, at the position it names (the start of the file when it names
    /// none), without the ` at line L column C` it appends to its message.
    pub fn from_yaml(file: impl Into<PathBuf>, error: &serde_yaml::Error) -> Self {
        let position = error
            .location()
            .map(|location| Position {
                line: location.line(),
                column: location.column(),
            })
            .unwrap_or(Position { line: 1, column: 1 });
        let message = error.to_string();
        let message = match message.rfind(" at line ") {
            Some(cut) => message[..cut].to_owned(),
            None => message,
        };
        Self::at(file, position, message)
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// A 1-based line and column in a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// The closest candidate to `word`, when one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(word, candidate), candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let columns = ["email", "name", "phone"];
        assert_eq!(did_you_mean("emial", columns), Some("email"));
        assert_eq!(did_you_mean("zzz", columns), None);
    }

    #[test]
    fn renders_as_file_line_col() {
        let diagnostic = Diagnostic::at("routes/a.yaml", Position { line: 3, column: 7 }, "bad")
            .with_hint("fix it");
        assert_eq!(
            diagnostic.to_string(),
            "routes/a.yaml:3:7: bad (hint: fix it)"
        );
    }
}
