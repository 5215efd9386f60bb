//! The names a template uses, found without rendering it: the variables it reads, and the
//! filters and tests it applies that the environment does not have.
//!
//! Variables come from minijinja's `undeclared_variables` (so `{% set %}` and loop variables
//! are not among them). Filter and test names come from its tokenizer, which is part of its
//! `unstable_machinery`; minijinja is pinned to an exact version in Cargo.toml for that reason.
//! Whether a name exists is asked of the environment itself, by compiling a one-line probe,
//! so the built-in names and ours are known without keeping a list.

use std::collections::HashMap;

use minijinja::machinery::{tokenize, Token, WhitespaceConfig};
use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, ErrorKind};

/// A filter or test a template applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callable {
    /// `value | name`
    Filter(String),
    /// `value is name`
    Test(String),
}

impl Callable {
    /// The name as written.
    pub fn name(&self) -> &str {
        match self {
            Self::Filter(name) | Self::Test(name) => name,
        }
    }
}

/// The filters and tests `source` applies, in order (each once). `in_expression` when
/// `source` is a bare expression (a `when:`), not a template.
pub fn callables(source: &str, in_expression: bool) -> Vec<Callable> {
    let tokens: Vec<Token<'_>> = tokenize(
        source,
        in_expression,
        SyntaxConfig,
        WhitespaceConfig::default(),
    )
    .map_while(Result::ok)
    .map(|(token, _)| token)
    .collect();
    let mut found = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        let callable = match token {
            Token::Pipe => match tokens.get(index + 1) {
                Some(Token::Ident(name)) => Callable::Filter((*name).to_owned()),
                _ => continue,
            },
            Token::Ident("is") => match (tokens.get(index + 1), tokens.get(index + 2)) {
                (Some(Token::Ident("not")), Some(Token::Ident(name))) => {
                    Callable::Test((*name).to_owned())
                }
                (Some(Token::Ident(name)), _) if *name != "not" => {
                    Callable::Test((*name).to_owned())
                }
                _ => continue,
            },
            _ => continue,
        };
        if !found.contains(&callable) {
            found.push(callable);
        }
    }
    found
}

/// Filters a suggestion may name: minijinja's common ones and ours. Each is checked against the
/// environment before it is suggested.
const FILTERS: &[&str] = &[
    "abs",
    "add_days",
    "add_hours",
    "add_minutes",
    "add_seconds",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "date",
    "default",
    "dictsort",
    "escape",
    "first",
    "float",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
    "urlencode",
];

/// Tests a suggestion may name (checked like [`FILTERS`]).
const TESTS: &[&str] = &[
    "boolean",
    "defined",
    "divisibleby",
    "endingwith",
    "eq",
    "even",
    "false",
    "filter",
    "float",
    "ge",
    "gt",
    "in",
    "integer",
    "iterable",
    "le",
    "lower",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "safe",
    "sameas",
    "sequence",
    "startingwith",
    "string",
    "test",
    "true",
    "undefined",
    "upper",
];

/// Answers "does the environment have this?" once per name.
#[derive(Debug, Default)]
pub struct Known {
    answers: HashMap<(u8, String), bool>,
}

impl Known {
    /// Whether `env` has the filter or test.
    pub fn has(&mut self, env: &Environment<'static>, callable: &Callable) -> bool {
        let (kind, probe, missing) = match callable {
            Callable::Filter(name) => (
                0,
                format!("{{{{ none | {name} }}}}"),
                ErrorKind::UnknownFilter,
            ),
            Callable::Test(name) => (
                1,
                format!("{{{{ none is {name} }}}}"),
                ErrorKind::UnknownTest,
            ),
        };
        *self
            .answers
            .entry((kind, callable.name().to_owned()))
            .or_insert_with(
                || !matches!(env.render_str(&probe, ()), Err(error) if error.kind() == missing),
            )
    }

    /// The existing filter or test closest to an unknown one, if one is close.
    pub fn closest(&mut self, env: &Environment<'static>, callable: &Callable) -> Option<String> {
        let (candidates, make): (&[&str], fn(String) -> Callable) = match callable {
            Callable::Filter(_) => (FILTERS, Callable::Filter),
            Callable::Test(_) => (TESTS, Callable::Test),
        };
        let existing: Vec<&str> = candidates
            .iter()
            .copied()
            .filter(|candidate| self.has(env, &make((*candidate).to_owned())))
            .collect();
        crate::route::diagnostic::did_you_mean(callable.name(), existing).map(str::to_owned)
    }

    /// Whether `name` is a global of `env` (a function such as `uuid` or `range`), which
    /// `undeclared_variables` reports like any other name.
    pub fn is_global(&mut self, env: &Environment<'static>, name: &str) -> bool {
        *self.answers.entry((2, name.to_owned())).or_insert_with(|| {
            env.render_str(&format!("{{{{ {name} is defined }}}}"), ())
                .is_ok_and(|defined| defined == "True")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_tests_are_found_in_templates_and_expressions() {
        let found = callables(
            "{{ data.name | uppercase }} {% if data.x is not defined %}{{ 'a' | upper | trim }}{% endif %}",
            false,
        );
        assert_eq!(
            found,
            [
                Callable::Filter("uppercase".into()),
                Callable::Test("defined".into()),
                Callable::Filter("upper".into()),
                Callable::Filter("trim".into()),
            ]
        );
        assert_eq!(
            callables("data.x is odd and data.y | length > 2", true),
            [
                Callable::Test("odd".into()),
                Callable::Filter("length".into())
            ]
        );
        assert!(
            callables("'a | b' ~ \"is x\"", true).is_empty(),
            "strings are not code"
        );
    }

    #[test]
    fn the_environment_is_asked_what_exists() {
        let mut env = Environment::new();
        env.add_function("uuid", || "x".to_owned());
        env.add_filter("add_days", |text: String, _days: i64| text);
        let mut known = Known::default();
        for (callable, exists) in [
            (Callable::Filter("upper".into()), true),
            (Callable::Filter("add_days".into()), true),
            (Callable::Filter("uppercase".into()), false),
            (Callable::Test("defined".into()), true),
            (Callable::Test("definde".into()), false),
        ] {
            assert_eq!(known.has(&env, &callable), exists, "{callable:?}");
        }
        assert_eq!(
            known
                .closest(&env, &Callable::Filter("uppercase".into()))
                .as_deref(),
            Some("upper")
        );
        assert!(known.is_global(&env, "uuid"));
        assert!(known.is_global(&env, "range"));
        assert!(!known.is_global(&env, "dta"));
    }
}
