//! What a template may read at its place in a route, and the check of what it does read.
//!
//! A route's templates see `event`, `data` (described by the event type's JSON Schema, when it
//! has one), `steps` (the `as:` names of the steps before, with the shapes those steps give),
//! `env` (the names in `env_allow`) and, inside a query's `for_each`, `row`. Anything else is
//! certain to fail on the first event, so loading refuses it with the place and a likely fix.
//! An optional `data` field read without `default(...)`, `is defined` or a `when:` naming it
//! fails on every event that lacks it, and is refused too.

use std::collections::BTreeSet;

use crate::route::diagnostic::did_you_mean;

/// The fields of `event`.
const EVENT_FIELDS: &[&str] = &[
    "topic",
    "key",
    "eventId",
    "eventType",
    "timestamp",
    "source",
    "data",
];

/// Functions a suggestion may name: ours, and minijinja's that make sense in a route.
const FUNCTIONS: &[&str] = &[
    "uuid",
    "random_uuid",
    "now",
    "today",
    "range",
    "dict",
    "namespace",
];

/// What `data` holds.
#[derive(Debug, Clone, Default)]
pub enum DataShape {
    /// Not known: a glob topic, any type, a type without a schema, or a scheduled route.
    #[default]
    Unknown,
    /// The schema of each event type the route takes: (topic and type, JSON Schema).
    Schemas(Vec<(String, serde_json::Value)>),
}

/// What a step's `as:` name holds.
#[derive(Debug, Clone)]
pub enum StepShape {
    /// One row (insert, upsert), with its table's columns when known.
    Row(Option<Described>),
    /// A list of rows (update, query).
    Rows(&'static str),
    /// An object with these fields (emit, http).
    Fields(&'static [&'static str]),
}

/// A table's name and columns.
#[derive(Debug, Clone)]
pub struct Described {
    /// Table name.
    pub table: String,
    /// Its columns.
    pub columns: Vec<String>,
}

/// One read that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The variable as written (`data.amout`), to find it in the file.
    pub variable: String,
    /// What is wrong.
    pub message: String,
    /// The likely fix.
    pub hint: Option<String>,
}

/// What the templates at one place of a route may read.
#[derive(Debug, Default)]
pub struct TemplateScope {
    data: DataShape,
    steps: Vec<(String, StepShape)>,
    rows: Vec<Option<Described>>,
    guards: Vec<BTreeSet<String>>,
    env_allow: Option<Vec<String>>,
}

impl TemplateScope {
    /// A scope checking `env.*` against `env_allow` (`None`: not checked).
    pub fn new(env_allow: Option<Vec<String>>) -> Self {
        Self {
            env_allow,
            ..Self::default()
        }
    }

    /// Starts a route whose events carry `data`.
    pub fn begin_route(&mut self, data: DataShape) {
        self.data = data;
        self.steps.clear();
        self.rows.clear();
        self.guards.clear();
    }

    /// A step named `name` (its `as:`) ran before what is checked next.
    pub fn bind_step(&mut self, name: &str, shape: StepShape) {
        self.steps.retain(|(bound, _)| bound != name);
        self.steps.push((name.to_owned(), shape));
    }

    /// Enters a `for_each` over rows of `table` (columns when known).
    pub fn enter_rows(&mut self, table: Option<Described>) {
        self.rows.push(table);
    }

    /// Leaves the innermost `for_each`.
    pub fn leave_rows(&mut self) {
        self.rows.pop();
    }

    /// The variables of a `when:` guard what follows until [`TemplateScope::pop_guards`].
    pub fn push_guards(&mut self, variables: BTreeSet<String>) {
        self.guards.push(
            variables
                .into_iter()
                .map(|variable| as_data(&variable))
                .collect(),
        );
    }

    /// Ends the innermost guard.
    pub fn pop_guards(&mut self) {
        self.guards.pop();
    }

    /// Whether the template (`in_text`) or a `when:` around it reads the event's type.
    fn tests_the_type(&self, in_text: bool) -> bool {
        in_text
            || self
                .guards
                .iter()
                .flatten()
                .any(|guard| guard == "event.eventType")
    }

    fn guarded(&self, variable: &str) -> bool {
        self.guards.iter().flatten().any(|guard| {
            guard == variable
                || variable.starts_with(&format!("{guard}."))
                || guard.starts_with(&format!("{variable}."))
        })
    }

    /// The reads among `variables` that cannot work. `text` is the template's source: a
    /// variable it reads through `| default(...)` or tests with `is defined` (or `is none`) may
    /// be absent. `is_global` tells functions (`uuid`, `range`) from unknown names.
    pub fn check(
        &self,
        variables: &BTreeSet<String>,
        text: &str,
        mut is_global: impl FnMut(&str) -> bool,
    ) -> Vec<Problem> {
        let mut problems = Vec::new();
        for written in variables {
            // `event.data.x` is `data.x`.
            let variable = &as_data(written);
            let segments: Vec<&str> = variable.split('.').collect();
            // Whether absence of `prefix` (`data.customer`) is handled, here or by a `when:`.
            let handled = |prefix: &str| {
                handles_absence(text, prefix)
                    || handles_absence(text, &format!("event.{prefix}"))
                    || self.guarded(prefix)
            };
            let problem = match segments[0] {
                "event" => self.event_problem(&segments[1..]),
                "data" => {
                    self.data_problem(&segments[1..], handled, text.contains("event.eventType"))
                }
                "steps" => self.step_problem(&segments[1..]),
                "env" => self.env_problem(&segments[1..]),
                "row" => self.row_problem(&segments[1..]),
                name if is_global(name) => None,
                name if text.contains(&format!("{name}(")) => {
                    let hint = did_you_mean(name, FUNCTIONS.iter().copied())
                        .map(|close| format!("did you mean {close}()?"))
                        .unwrap_or_else(|| format!("the functions are {}", FUNCTIONS.join(", ")));
                    Some((format!("unknown function {name}"), Some(hint)))
                }
                name => {
                    let mut known = vec!["event", "data", "steps", "env"];
                    if !self.rows.is_empty() {
                        known.push("row");
                    }
                    let hint = did_you_mean(name, known.iter().copied())
                        .map(|close| format!("did you mean {close}?"))
                        .unwrap_or_else(|| format!("templates read {}", known.join(", ")));
                    Some((format!("unknown variable {name}"), Some(hint)))
                }
            };
            if let Some((message, hint)) = problem {
                problems.push(Problem {
                    variable: written.clone(),
                    message,
                    hint,
                });
            }
        }
        problems
    }

    fn event_problem(&self, path: &[&str]) -> Option<(String, Option<String>)> {
        let field = *path.first()?;
        if EVENT_FIELDS.contains(&field) {
            return None;
        }
        Some((
            format!("event has no field {field}"),
            Some(match did_you_mean(field, EVENT_FIELDS.iter().copied()) {
                Some(close) => format!("did you mean event.{close}?"),
                None => format!("it has {}", EVENT_FIELDS.join(", ")),
            }),
        ))
    }

    fn data_problem(
        &self,
        path: &[&str],
        handled: impl Fn(&str) -> bool,
        text_reads_type: bool,
    ) -> Option<(String, Option<String>)> {
        let DataShape::Schemas(schemas) = &self.data else {
            return None;
        };
        let statuses: Vec<(&str, FieldStatus)> = schemas
            .iter()
            .map(|(described, schema)| (described.as_str(), field_status(schema, path)))
            .collect();
        if statuses
            .iter()
            .any(|(_, status)| matches!(status, FieldStatus::Unknown))
        {
            return None;
        }
        let written = |depth: usize| format!("data.{}", path[..=depth].join("."));
        let undeclared: Vec<_> = statuses
            .iter()
            .filter_map(|(described, status)| match status {
                FieldStatus::Undeclared { depth, close } => Some((*described, *depth, close)),
                _ => None,
            })
            .collect();
        if !undeclared.is_empty() && undeclared.len() == statuses.len() {
            let (described, depth, close) = undeclared[0];
            if handled(&written(depth)) {
                return None;
            }
            let parent = path[..depth]
                .iter()
                .map(|s| format!(".{s}"))
                .collect::<String>();
            let hint = match close {
                Some(close) => format!("did you mean data{parent}.{close}?"),
                None => "if producers send it, declare it in the event's schema".into(),
            };
            return Some((
                format!("{} is not in the schema of {described}", written(depth)),
                Some(hint),
            ));
        }
        // A route taking several types often reads a field of one type behind a test of the
        // type (`when: event.eventType == 'B'`); which types reach the read is not known here.
        if !undeclared.is_empty() && self.tests_the_type(text_reads_type) {
            return None;
        }
        // Present in some events only: optional, or declared by some of the route's types.
        let (described, depth) = statuses
            .iter()
            .find_map(|(described, status)| match status {
                FieldStatus::Optional { depth } | FieldStatus::Undeclared { depth, .. } => {
                    Some((*described, *depth))
                }
                _ => None,
            })?;
        let written = written(depth);
        if handled(&written) {
            return None;
        }
        let why = if undeclared.is_empty() {
            format!("{written} is optional in the schema of {described}")
        } else {
            format!("{written} is not in the schema of {described}")
        };
        Some((
            format!("{why}, so an event without it fails here"),
            Some(format!(
                "write {{{{ {written} | default(none) }}}}, or add `when: {written} is defined` to the step"
            )),
        ))
    }

    fn step_problem(&self, path: &[&str]) -> Option<(String, Option<String>)> {
        let name = *path.first()?;
        let Some((_, shape)) = self.steps.iter().find(|(bound, _)| bound == name) else {
            let names: Vec<&str> = self.steps.iter().map(|(bound, _)| bound.as_str()).collect();
            let hint = match did_you_mean(name, names.iter().copied()) {
                Some(close) => format!("did you mean steps.{close}?"),
                None if names.is_empty() => "no step before this one has `as:`".into(),
                None => format!("steps before this one: {}", names.join(", ")),
            };
            return Some((
                format!("steps.{name} is not the `as:` of a step before this one"),
                Some(hint),
            ));
        };
        let field = *path.get(1)?;
        match shape {
            StepShape::Row(Some(described)) => {
                column_problem(&format!("steps.{name}"), field, described)
            }
            StepShape::Row(None) => None,
            StepShape::Rows(kind) => Some((
                format!("steps.{name} is the list of rows {kind} returns, not one row"),
                Some(format!(
                    "write steps.{name}[0].{field}, or go through the rows with a query's for_each"
                )),
            )),
            StepShape::Fields(fields) => (!fields.contains(&field)).then(|| {
                (
                    format!("steps.{name} has no field {field}"),
                    Some(match did_you_mean(field, fields.iter().copied()) {
                        Some(close) => format!("did you mean steps.{name}.{close}?"),
                        None => format!("it has {}", fields.join(", ")),
                    }),
                )
            }),
        }
    }

    fn env_problem(&self, path: &[&str]) -> Option<(String, Option<String>)> {
        let name = *path.first()?;
        let allowed = self.env_allow.as_ref()?;
        if allowed.iter().any(|allowed| allowed == name) {
            return None;
        }
        let hint = match did_you_mean(name, allowed.iter().map(String::as_str)) {
            Some(close) => format!("did you mean env.{close}?"),
            None => format!(
                "templates see only the variables listed in env_allow (crm-router.yaml); add {name} there"
            ),
        };
        Some((format!("env.{name} is not in env_allow"), Some(hint)))
    }

    fn row_problem(&self, path: &[&str]) -> Option<(String, Option<String>)> {
        let Some(table) = self.rows.last() else {
            return Some((
                "row exists only in the actions of a query's for_each".into(),
                Some(
                    "read the query's rows as steps.<its as:>, or move this step into its for_each"
                        .into(),
                ),
            ));
        };
        let field = *path.first()?;
        table
            .as_ref()
            .and_then(|described| column_problem("row", field, described))
    }
}

/// What one event type's schema says of a `data` path.
enum FieldStatus {
    /// Declared and required all the way, or required with a shape the schema does not give.
    Present,
    /// The schema's shape is not known here (`$ref`, `allOf`, `if`, a free-form object…).
    Unknown,
    /// Declared, but not required, at `depth`.
    Optional { depth: usize },
    /// Not declared at `depth`; `close` is a declared name like it.
    Undeclared { depth: usize, close: Option<String> },
}

/// Keywords that declare or require properties other than through `properties`/`required`.
const COMBINING: &[&str] = &[
    "$ref",
    "$dynamicRef",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "dependentSchemas",
    "dependentRequired",
    "patternProperties",
    "unevaluatedProperties",
];

fn field_status(schema: &serde_json::Value, path: &[&str]) -> FieldStatus {
    let mut node = schema;
    for (depth, field) in path.iter().enumerate() {
        if COMBINING.iter().any(|keyword| node.get(keyword).is_some()) {
            return FieldStatus::Unknown;
        }
        let properties = node.get("properties").and_then(|p| p.as_object());
        let required = node
            .get("required")
            .and_then(|required| required.as_array())
            .is_some_and(|required| required.iter().any(|name| name == *field));
        let Some(properties) = properties else {
            return if required {
                FieldStatus::Present
            } else {
                FieldStatus::Unknown
            };
        };
        match properties.get(*field) {
            None if required => return FieldStatus::Present,
            None => {
                return FieldStatus::Undeclared {
                    depth,
                    close: did_you_mean(field, properties.keys().map(String::as_str))
                        .map(str::to_owned),
                }
            }
            Some(_) if !required => return FieldStatus::Optional { depth },
            Some(child) => node = child,
        }
    }
    FieldStatus::Present
}

/// `event.data.x` as `data.x`; other names as they are.
fn as_data(variable: &str) -> String {
    variable
        .strip_prefix("event.")
        .filter(|rest| *rest == "data" || rest.starts_with("data."))
        .map_or_else(|| variable.to_owned(), str::to_owned)
}

/// Whether `text` reads `variable` through `| default(...)` (or `| d(...)`), as another read's
/// default, or tests it (`is defined`, `is string`…), somewhere.
fn handles_absence(text: &str, variable: &str) -> bool {
    text.match_indices(variable).any(|(at, _)| {
        // As the fallback of another read: `default(data.user_id)`, `d(data.x)`.
        let before = text[..at].trim_end();
        if before.ends_with("default(") || before.ends_with("d(") {
            return true;
        }
        let rest = text[at + variable.len()..].trim_start();
        if let Some(filter) = rest.strip_prefix('|') {
            let filter = filter.trim_start();
            return filter.starts_with("default") || filter.starts_with("d(");
        }
        // Any test: tests do not fail on an undefined value.
        rest.starts_with("is ")
    })
}

fn column_problem(
    written: &str,
    field: &str,
    described: &Described,
) -> Option<(String, Option<String>)> {
    if described.columns.iter().any(|column| column == field) {
        return None;
    }
    let hint = did_you_mean(field, described.columns.iter().map(String::as_str))
        .map(|close| format!("did you mean {written}.{close}?"));
    Some((
        format!(
            "{written} has no column {field} (it is a row of {})",
            described.table
        ),
        hint,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> TemplateScope {
        let mut scope = TemplateScope::new(Some(vec!["BILLING_URL".into()]));
        scope.begin_route(DataShape::Schemas(vec![(
            "orders ORDER_PAID".into(),
            json!({"type": "object", "required": ["amount", "customer", "extra"], "properties": {
                "amount": {"type": "number"}, "note": {"type": "string"},
                "customer": {"type": "object", "required": ["id"], "properties": {"id": {}, "tier": {}}},
                "extra": {"type": "object"}}}),
        )]));
        scope.bind_step(
            "invoice",
            StepShape::Row(Some(Described {
                table: "invoices".into(),
                columns: vec!["id".into(), "amount".into()],
            })),
        );
        scope.bind_step("paid", StepShape::Rows("an update"));
        scope
    }

    fn problems(scope: &TemplateScope, variables: &[&str], text: &str) -> Vec<String> {
        let variables = variables.iter().map(|v| (*v).to_owned()).collect();
        scope
            .check(&variables, text, |name| ["uuid", "now"].contains(&name))
            .into_iter()
            .map(|problem| match problem.hint {
                Some(hint) => format!("{} (hint: {hint})", problem.message),
                None => problem.message,
            })
            .collect()
    }

    #[test]
    fn reads_that_exist_pass() {
        let scope = scope();
        let ok = [
            "data.amount",
            "data.customer.id",
            "data.extra.anything",
            "event.eventId",
            "event.data.amount",
            "steps.invoice.id",
            "steps.paid",
            "env.BILLING_URL",
            "uuid",
        ];
        assert_eq!(problems(&scope, &ok, "{{ x }}"), Vec::<String>::new());
    }

    #[test]
    fn each_kind_of_mistake_is_named_with_a_fix() {
        let scope = scope();
        for (variable, expected) in [
            ("dta.amount", "unknown variable dta (hint: did you mean data?)"),
            ("data.amout", "data.amout is not in the schema of orders ORDER_PAID (hint: did you mean data.amount?)"),
            ("data.customer.tire", "data.customer.tire is not in the schema of orders ORDER_PAID (hint: did you mean data.customer.tier?)"),
            ("data.note", "data.note is optional in the schema of orders ORDER_PAID, so an event without it fails here (hint: write {{ data.note | default(none) }}, or add `when: data.note is defined` to the step)"),
            ("steps.invoce.id", "steps.invoce is not the `as:` of a step before this one (hint: did you mean steps.invoice?)"),
            ("steps.invoice.amout", "steps.invoice has no column amout (it is a row of invoices) (hint: did you mean steps.invoice.amount?)"),
            ("steps.paid.customer", "steps.paid is the list of rows an update returns, not one row (hint: write steps.paid[0].customer, or go through the rows with a query's for_each)"),
            ("env.BILLING_WEBHOOK_URL", "env.BILLING_WEBHOOK_URL is not in env_allow (hint: did you mean env.BILLING_URL?)"),
            ("env.SLACK_TOKEN", "env.SLACK_TOKEN is not in env_allow (hint: templates see only the variables listed in env_allow (crm-router.yaml); add SLACK_TOKEN there)"),
            ("event.eventID", "event has no field eventID (hint: did you mean event.eventId?)"),
            ("row.id", "row exists only in the actions of a query's for_each (hint: read the query's rows as steps.<its as:>, or move this step into its for_each)"),
        ] {
            assert_eq!(problems(&scope, &[variable], "{{ x }}"), [expected], "{variable}");
        }
    }

    #[test]
    fn unknown_functions_are_called_functions() {
        assert_eq!(
            problems(&scope(), &["uuidd"], "{{ uuidd() }}"),
            ["unknown function uuidd (hint: did you mean uuid()?)"]
        );
    }

    #[test]
    fn optional_fields_may_be_read_where_absence_is_handled() {
        let mut scope = scope();
        assert!(problems(&scope, &["data.note"], "{{ data.note | default('') }}").is_empty());
        assert!(problems(
            &scope,
            &["data.note"],
            "{% if data.note is defined %}{{ data.note }}{% endif %}"
        )
        .is_empty());
        assert!(
            problems(&scope, &["data.other"], "{{ data.other | default(none) }}").is_empty(),
            "undeclared, and the template copes"
        );
        assert_eq!(
            problems(
                &scope,
                &["data.note", "data.amount"],
                "{{ data.note }} {{ data.amount | default(0) }}"
            )
            .len(),
            1,
            "one read's default does not cover another's"
        );
        scope.push_guards(["data.note".to_owned()].into());
        assert!(problems(&scope, &["data.note"], "{{ data.note }}").is_empty());
        scope.pop_guards();
        assert_eq!(problems(&scope, &["data.note"], "{{ data.note }}").len(), 1);
    }

    #[test]
    fn rows_are_read_inside_for_each_only() {
        let mut scope = scope();
        scope.enter_rows(Some(Described {
            table: "tasks".into(),
            columns: vec!["id".into()],
        }));
        assert!(problems(&scope, &["row.id"], "").is_empty());
        assert_eq!(
            problems(&scope, &["row.idd"], ""),
            ["row has no column idd (it is a row of tasks) (hint: did you mean row.id?)"]
        );
        scope.leave_rows();
        assert_eq!(problems(&scope, &["row.id"], "").len(), 1);
    }

    #[test]
    fn unknown_shapes_are_not_guessed_at() {
        let mut scope = TemplateScope::new(None);
        scope.begin_route(DataShape::Unknown);
        assert!(problems(&scope, &["data.anything", "env.ANY"], "").is_empty());
    }
}
