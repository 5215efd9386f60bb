//! Event schemas: `schemas/<topic>/<EVENT_TYPE>.json` (JSON Schema 2020-12) describing `data`.
//!
//! An event whose type has a schema must match it to be routed; an event without a schema is
//! routed unchecked (so new event types can flow before anyone writes their schema).

use std::collections::HashMap;
use std::path::PathBuf;

use jsonschema::Validator;

use crate::route::diagnostic::{Diagnostic, Position};

/// A schema file to compile.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    /// Path shown in diagnostics.
    pub path: PathBuf,
    /// Topic (the directory name).
    pub topic: String,
    /// Event type (the file stem).
    pub event_type: String,
    /// File contents.
    pub text: String,
}

/// Compiled validators by (topic, event type).
#[derive(Default)]
pub struct SchemaRegistry {
    validators: HashMap<(String, String), Validator>,
    /// The schemas as written, for the route checks to read what `data` holds.
    documents: HashMap<(String, String), serde_json::Value>,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("schemas", &self.validators.len())
            .finish()
    }
}

impl SchemaRegistry {
    /// Compiles every file; problems are appended to `diagnostics`.
    pub fn compile(files: Vec<SchemaFile>, diagnostics: &mut Vec<Diagnostic>) -> Self {
        let mut validators = HashMap::new();
        let mut documents = HashMap::new();
        for file in files {
            let schema: serde_json::Value = match serde_json::from_str(&file.text) {
                Ok(schema) => schema,
                Err(error) => {
                    diagnostics.push(Diagnostic::at(
                        &file.path,
                        Position {
                            line: error.line(),
                            column: error.column(),
                        },
                        format!("invalid JSON: {error}"),
                    ));
                    continue;
                }
            };
            match jsonschema::draft202012::new(&schema) {
                Ok(validator) => {
                    let key = (file.topic, file.event_type);
                    documents.insert(key.clone(), schema);
                    validators.insert(key, validator);
                }
                Err(error) => diagnostics.push(
                    Diagnostic::at(
                        &file.path,
                        Position { line: 1, column: 1 },
                        format!("invalid JSON Schema at {}: {error}", error.schema_path()),
                    )
                    .with_hint("schemas follow JSON Schema draft 2020-12"),
                ),
            }
        }
        Self {
            validators,
            documents,
        }
    }

    /// The schema of `data` for `topic` and `event_type`, as written.
    pub fn document(&self, topic: &str, event_type: &str) -> Option<&serde_json::Value> {
        self.documents
            .get(&(topic.to_owned(), event_type.to_owned()))
    }

    /// Number of schemas.
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Whether there are no schemas.
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// Checks `data` of an event; `Err` lists each violation as `<json pointer>: <message>`.
    pub fn validate(
        &self,
        topic: &str,
        event_type: &str,
        data: &serde_json::Value,
    ) -> Result<(), Vec<String>> {
        let Some(validator) = self
            .validators
            .get(&(topic.to_owned(), event_type.to_owned()))
        else {
            return Ok(());
        };
        let errors: Vec<String> = validator
            .iter_errors(data)
            .map(|error| {
                let pointer = error.instance_path().to_string();
                let at = if pointer.is_empty() {
                    "/".to_owned()
                } else {
                    pointer
                };
                format!("data{at}: {error}")
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file(text: &str) -> SchemaFile {
        SchemaFile {
            path: "schemas/user.events/USER_CREATED.json".into(),
            topic: "user.events".into(),
            event_type: "USER_CREATED".into(),
            text: text.into(),
        }
    }

    #[test]
    fn validates_data_and_names_the_field() {
        let mut diagnostics = Vec::new();
        let registry = SchemaRegistry::compile(
            vec![file(
                r#"{"type":"object","required":["email"],"properties":{"email":{"type":"string"}}}"#,
            )],
            &mut diagnostics,
        );
        assert!(diagnostics.is_empty());
        assert!(registry
            .validate("user.events", "USER_CREATED", &json!({"email": "a@b"}))
            .is_ok());
        let errors = registry
            .validate("user.events", "USER_CREATED", &json!({"email": 5}))
            .unwrap_err();
        assert!(errors[0].starts_with("data/email: "), "{errors:?}");
        assert!(registry.validate("other.events", "X", &json!(1)).is_ok());
    }

    #[test]
    fn bad_schema_files_are_diagnostics_with_positions() {
        let mut diagnostics = Vec::new();
        SchemaRegistry::compile(
            vec![file("{\n  \"type\": \"object\",\n}")],
            &mut diagnostics,
        );
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].line, 3);
        let mut diagnostics = Vec::new();
        SchemaRegistry::compile(vec![file(r#"{"type": 12}"#)], &mut diagnostics);
        assert!(
            diagnostics[0].message.contains("invalid JSON Schema"),
            "{}",
            diagnostics[0]
        );
    }
}
