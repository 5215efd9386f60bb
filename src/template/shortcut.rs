//! Route values evaluated without running their template.
//!
//! Most values in routes take one of a few forms: a variable path (`{{ data.name }}`), one of our
//! functions (`{{ uuid() }}`, `{{ now() | add_days(3) }}`), a path with a null default
//! (`{{ data.ownerId | default(none) }}`), or text around paths (`初回コンタクト: {{ data.name }}`).
//! Running a minijinja template for each of them, for every event, was most of the engine's
//! template time. A shortcut gives exactly what the template gives or declines (`None`), and
//! then the template runs, so every error is still minijinja's own.

use chrono::Duration;

use super::functions;
use super::TemplateValue;

/// A sole `{{ expression }}` that can be evaluated directly.
#[derive(Debug, Clone, PartialEq)]
pub enum Shortcut {
    /// `a.b.c`: the value at the path.
    Path(Vec<String>),
    /// `a.b.c | default(none)`: the value at the path, or null where its last name is absent.
    PathOrNone(Vec<String>),
    /// `uuid()`, `random_uuid()`, `now()` or `today()`, possibly shifted (`| add_days(3)`).
    Call(Function, Option<Shift>),
}

/// Our functions that take no argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `uuid()`
    Uuid,
    /// `random_uuid()`
    RandomUuid,
    /// `now()`
    Now,
    /// `today()`
    Today,
}

/// `| add_days(N)` and its siblings, with a literal `N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift {
    unit: Unit,
    amount: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Days,
    Hours,
    Minutes,
    Seconds,
}

impl Unit {
    /// The same conversion the filter of this name makes.
    fn duration(self) -> fn(i64) -> Option<Duration> {
        match self {
            Self::Days => Duration::try_days,
            Self::Hours => Duration::try_hours,
            Self::Minutes => Duration::try_minutes,
            Self::Seconds => Duration::try_seconds,
        }
    }
}

/// A text template made of literal text and plain paths only.
#[derive(Debug, Clone, PartialEq)]
pub struct TextShortcut(Vec<Part>);

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Path(Vec<String>),
}

/// Names the parser reads as literals or operators, never as variables.
const RESERVED: &[&str] = &[
    "true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if", "else",
];

/// The segments of `expression` when it is a plain dotted path of identifiers.
pub fn plain_path(expression: &str) -> Option<Vec<String>> {
    let segments: Vec<String> = expression.split('.').map(str::to_owned).collect();
    let identifier = |segment: &str| {
        let mut characters = segment.chars();
        characters
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
            && characters.all(|rest| rest.is_ascii_alphanumeric() || rest == '_')
            && !RESERVED.contains(&segment)
    };
    segments
        .iter()
        .all(|segment| identifier(segment))
        .then_some(segments)
}

impl Shortcut {
    /// The shortcut for a sole expression (the text between `{{` and `}}`, trimmed), if it
    /// has one of the forms above.
    pub fn parse(expression: &str) -> Option<Self> {
        let (head, filter) = match expression.split_once('|') {
            Some((head, filter)) => (head.trim(), Some(filter.trim())),
            None => (expression, None),
        };
        let function = match head {
            "uuid()" => Some(Function::Uuid),
            "random_uuid()" => Some(Function::RandomUuid),
            "now()" => Some(Function::Now),
            "today()" => Some(Function::Today),
            _ => None,
        };
        match (function, filter) {
            (Some(function), None) => Some(Self::Call(function, None)),
            (Some(function), Some(filter)) => {
                Some(Self::Call(function, Some(Shift::parse(filter)?)))
            }
            (None, None) => plain_path(head).map(Self::Path),
            (None, Some("default(none)" | "default(None)")) => {
                plain_path(head).map(Self::PathOrNone)
            }
            (None, Some(_)) => None,
        }
    }

    /// The value, or `None` when the template must decide. `template` is the name the
    /// expression's template is registered under, which `uuid()` is derived from.
    pub fn evaluate(&self, context: &TemplateValue, template: &str) -> Option<serde_json::Value> {
        match self {
            Self::Path(path) => look_up(context, path),
            Self::PathOrNone(path) => {
                let (last, parents) = path.split_last()?;
                let parent = walk(context, parents)?;
                if parent.kind() != minijinja::value::ValueKind::Map {
                    return None;
                }
                match parent.get_attr(last) {
                    Ok(value) if value.is_undefined() => Some(serde_json::Value::Null),
                    Ok(value) => serde_json::to_value(&value).ok(),
                    Err(_) => None,
                }
            }
            Self::Call(function, shift) => {
                let value = match function {
                    // The template's first (and only) call.
                    Function::Uuid => functions::uuid_at(
                        &context.get_attr("event").ok()?,
                        &context
                            .get_attr(functions::ITERATIONS_VARIABLE)
                            .unwrap_or_default(),
                        template,
                        0,
                    )?,
                    Function::RandomUuid => functions::random_uuid(),
                    Function::Now => functions::now_rfc3339(),
                    Function::Today => functions::today(),
                };
                let value = match shift {
                    None => value,
                    // An error is the template's to report.
                    Some(shift) => {
                        functions::shift(&value, shift.amount, shift.unit.duration()).ok()?
                    }
                };
                Some(serde_json::Value::String(value))
            }
        }
    }
}

impl Shift {
    fn parse(filter: &str) -> Option<Self> {
        let (name, rest) = filter.split_once('(')?;
        let amount = rest.strip_suffix(')')?.trim().parse::<i64>().ok()?;
        let unit = match name.trim() {
            "add_days" => Unit::Days,
            "add_hours" => Unit::Hours,
            "add_minutes" => Unit::Minutes,
            "add_seconds" => Unit::Seconds,
            _ => return None,
        };
        Some(Self { unit, amount })
    }
}

impl TextShortcut {
    /// The shortcut for a text template that is literal text and `{{ path }}`s only.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            parts.push(Part::Literal(literal(&rest[..start])?));
            let after = &rest[start + 2..];
            let end = after.find("}}")?;
            let inner = &after[..end];
            // Whitespace control changes the text around the expression.
            if inner.starts_with(['-', '+']) || inner.ends_with(['-', '+']) {
                return None;
            }
            parts.push(Part::Path(plain_path(inner.trim())?));
            rest = &after[end + 2..];
        }
        parts.push(Part::Literal(literal(rest)?));
        parts.retain(|part| !matches!(part, Part::Literal(text) if text.is_empty()));
        Some(Self(parts))
    }

    /// The rendered text, or `None` when the template must decide: a path that is absent or
    /// holds anything but a string or an integer (minijinja's own formatting decides those),
    /// or text longer than `limit`.
    pub fn evaluate(&self, context: &TemplateValue, limit: usize) -> Option<String> {
        let mut output = String::new();
        for part in &self.0 {
            match part {
                Part::Literal(text) => output.push_str(text),
                Part::Path(path) => match look_up(context, path)? {
                    serde_json::Value::String(text) => output.push_str(&text),
                    serde_json::Value::Number(number) if !number.is_f64() => {
                        output.push_str(&number.to_string())
                    }
                    _ => return None,
                },
            }
        }
        (output.len() <= limit).then_some(output)
    }
}

/// Literal text between expressions, when it holds no other template syntax.
fn literal(text: &str) -> Option<String> {
    (!text.contains(['{', '}'])).then(|| text.to_owned())
}

/// The value at `path` in `context`, if every name is there in a map.
fn walk(context: &TemplateValue, path: &[String]) -> Option<TemplateValue> {
    let mut value = context.clone();
    for segment in path {
        // Only maps: on anything else the template decides what `.name` means.
        if value.kind() != minijinja::value::ValueKind::Map {
            return None;
        }
        value = value.get_attr(segment).ok()?;
        if value.is_undefined() {
            return None;
        }
    }
    Some(value)
}

/// The value at `path` in `context` as JSON, if every name is there.
pub fn look_up(context: &TemplateValue, path: &[String]) -> Option<serde_json::Value> {
    serde_json::to_value(walk(context, path)?).ok()
}
