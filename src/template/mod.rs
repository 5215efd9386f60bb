//! The one template environment of a route set.
//!
//! Every string in a route that contains `{{`, `{%` or `{#` is compiled here when the route set
//! is loaded, so a syntax error fails the reload, never live traffic. Rendering is strict: an
//! undefined variable is an error, not an empty string. There is no HTML escaping (values go to
//! SQL parameters and JSON), and a fuel limit stops runaway loops.
//!
//! A string that is exactly one `{{ expression }}` keeps the expression's type (a number stays a
//! number, `none` becomes SQL NULL); any other template renders to a string.

mod functions;
pub mod names;
mod shortcut;

use shortcut::{plain_path, Shortcut, TextShortcut};

pub use functions::{now_rfc3339, ITERATIONS_VARIABLE};

use minijinja::{Environment, UndefinedBehavior};
use thiserror::Error;

pub use minijinja::Value as TemplateValue;

/// Upper bounds on what one template may do.
#[derive(Debug, Clone, Copy)]
pub struct TemplateLimits {
    /// Fuel for one render (roughly instructions executed).
    pub fuel: u64,
    /// Largest rendered string, in bytes.
    pub max_output_bytes: usize,
}

impl Default for TemplateLimits {
    fn default() -> Self {
        Self {
            fuel: 200_000,
            max_output_bytes: 1 << 20,
        }
    }
}

/// A template failed to compile.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct CompileError {
    /// Path below the compiled node (`.text`, `[2]`), empty for the node itself.
    pub path: String,
    /// 0-based line inside the template text where the error is, when minijinja knows it.
    pub line_offset: usize,
    /// minijinja's description.
    pub message: String,
}

/// A template failed while rendering for one event.
#[derive(Debug, Error)]
pub enum RenderError {
    /// minijinja reported an error (undefined variable, type error, out of fuel, ...).
    #[error("{0}")]
    Template(TemplateFailure),
    /// The output was larger than the limit.
    #[error("template output of {actual} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Bytes rendered.
        actual: usize,
        /// The limit.
        limit: usize,
    },
    /// A `{{ expression }}` produced something that is not JSON (cannot happen with `tojson`).
    #[error("expression result is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
}

/// Where a template is written in its route file, and each variable it reads.
#[derive(Debug, Clone, Default)]
pub struct TemplateLocation {
    /// `FILE:LINE:COL` of the template.
    pub at: String,
    /// `FILE:LINE:COL` of each variable it reads (`env.BILLING_URL`), where found.
    pub variables: Vec<(String, String)>,
}

impl TemplateLocation {
    /// Where `expression` (what a render error points at) is written: at the variable it
    /// reads, the longest whose path begins it, else at the template.
    fn of(&self, expression: Option<&str>) -> String {
        expression
            .and_then(|expression| {
                self.variables
                    .iter()
                    .filter(|(variable, _)| {
                        expression == variable
                            || expression.starts_with(&format!("{variable}."))
                            || expression.starts_with(&format!("{variable}["))
                            || expression.starts_with(&format!("{variable} "))
                    })
                    .max_by_key(|(variable, _)| variable.len())
            })
            .map_or_else(|| self.at.clone(), |(_, at)| at.clone())
    }
}

/// A template that failed for one event: what went wrong, in which expression, and where the
/// template is written. minijinja's own report is not kept: it lists the values of every
/// variable the template read, `env` secrets included, and dead letters and logs keep it.
#[derive(Debug)]
pub struct TemplateFailure {
    /// What went wrong: `undefined value`, `invalid operation: …`.
    pub what: String,
    /// The expression minijinja points at (`env.BILLING_URL`), when it points at one.
    pub expression: Option<String>,
    /// `FILE:LINE:COL` of the expression (or else of the template) in its route file, when it
    /// came from one.
    pub at: Option<String>,
    /// The route and the template's place in it: `order-paid-creates-invoice actions[1].http.url`.
    pub place: String,
}

impl std::fmt::Display for TemplateFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}", self.what)?;
        if let Some(expression) = &self.expression {
            write!(formatter, " `{expression}`")?;
        }
        match &self.at {
            Some(at) => write!(formatter, " ({at}, {})", self.place),
            None => write!(formatter, " ({})", self.place),
        }
    }
}

impl TemplateFailure {
    /// Describes `error`, raised by the template registered as `name` with `source`.
    fn new(
        error: &minijinja::Error,
        name: &str,
        source: Option<&str>,
        location: Option<&TemplateLocation>,
    ) -> Self {
        let what = match (error.kind(), error.detail()) {
            (minijinja::ErrorKind::UndefinedError, _) | (_, None) => error.kind().to_string(),
            (kind, Some(detail)) => format!("{kind}: {detail}"),
        };
        let expression = source
            .zip(error.range())
            .and_then(|(source, range)| failed_expression(source, range))
            .map(|expression| {
                if expression != NATIVE_FILTER {
                    return expression;
                }
                // Raised by the filter wrapping a sole expression: name what it wraps.
                source
                    .and_then(|source| source.get(source.find('(')? + 1..source.rfind(") |")?))
                    .map_or(expression.clone(), str::to_owned)
            });
        // The registration suffix (`#14`) means nothing to a reader.
        let name = name.rsplit_once('#').map_or(name, |(name, _)| name);
        let place = match name.split_once(':') {
            Some((route, place)) => format!("{route} {place}"),
            None => name.to_owned(),
        };
        Self {
            at: location.map(|location| location.of(expression.as_deref())),
            what,
            expression,
            place,
        }
    }
}

/// The expression at `range` of `source`, widened to the whole dotted name it ends: minijinja
/// points at `.invoce.id` in `steps.invoce.id`.
fn failed_expression(source: &str, range: std::ops::Range<usize>) -> Option<String> {
    let text = source.get(range.clone())?;
    let before = source.get(..range.start)?;
    let name_start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .last()
        .map_or(range.start, |(at, _)| at);
    let expression = format!("{}{text}", &source[name_start..range.start]);
    let expression = expression.trim();
    (!expression.is_empty()).then(|| expression.to_owned())
}

/// A compiled value: a literal, a template, or a tree of them (for `data:` and `body:`).
#[derive(Debug, Clone, PartialEq)]
pub enum ValueTemplate {
    /// A value without template syntax, passed through as is.
    Literal(serde_json::Value),
    /// `{{ expr }}` alone: renders to the expression's own JSON type.
    Expression(Expression),
    /// Any other template: renders to a string.
    Text(TextTemplate),
    /// A list whose items are templates.
    List(Vec<ValueTemplate>),
    /// A map whose values are templates (keys are literal).
    Map(Vec<(String, ValueTemplate)>),
}

/// A compiled sole `{{ expression }}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    /// The template that evaluates it.
    name: String,
    /// How to evaluate it without running the template, when it has a form that allows it
    /// (see [`shortcut`]); the template runs whenever the shortcut declines.
    shortcut: Option<Shortcut>,
}

/// A compiled text template (anything but a sole expression).
#[derive(Debug, Clone, PartialEq)]
pub struct TextTemplate {
    name: String,
    /// Set when the text is literal text around plain paths.
    shortcut: Option<TextShortcut>,
}

/// Serialises an expression's value as JSON, refusing undefined (which `tojson` would accept).
const NATIVE_FILTER: &str = "__crm_router_native";

fn native_json(value: minijinja::Value) -> Result<String, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::from(minijinja::ErrorKind::UndefinedError));
    }
    serde_json::to_string(&value).map_err(|error| {
        minijinja::Error::new(minijinja::ErrorKind::BadSerialization, error.to_string())
    })
}

/// A compiled `when:` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    name: String,
    /// Set when the condition is a plain path, whose truth needs no template.
    path: Option<Vec<String>>,
}

/// The compiled templates of one route set.
pub struct TemplateEnvironment {
    env: Environment<'static>,
    limits: TemplateLimits,
    /// Makes every registered name unique: a map key may itself contain a dot, so
    /// `{name}.{key}` alone could collide and silently replace another template.
    registered: usize,
    /// Which filters, tests and globals exist, asked once each.
    known: names::Known,
    /// Where each registered template is written, for render errors.
    locations: std::collections::HashMap<String, TemplateLocation>,
}

impl std::fmt::Debug for TemplateEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateEnvironment")
            .finish_non_exhaustive()
    }
}

fn has_template_syntax(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// The inner expression when `text` is exactly one `{{ ... }}`.
fn sole_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if has_template_syntax(inner) || inner.contains("}}") {
        return None;
    }
    Some(inner.trim())
}

fn compile_error(error: &minijinja::Error, path: &str) -> CompileError {
    CompileError {
        path: path.to_owned(),
        line_offset: error.line().unwrap_or(1).saturating_sub(1),
        message: match error.detail() {
            Some(detail) => format!("template syntax error: {detail}"),
            None => format!("template syntax error: {}", error.kind()),
        },
    }
}

impl TemplateEnvironment {
    /// An empty environment with crm-router's functions and filters.
    pub fn new(limits: TemplateLimits) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_fuel(Some(limits.fuel));
        env.set_keep_trailing_newline(true);
        functions::register(&mut env);
        env.add_filter(NATIVE_FILTER, native_json);
        Self {
            env,
            limits,
            registered: 0,
            known: names::Known::default(),
            locations: std::collections::HashMap::new(),
        }
    }

    fn unique_name(&mut self, name: &str) -> String {
        self.registered += 1;
        format!("{name}#{}", self.registered)
    }

    /// Compiles a string that may contain template syntax. `name` identifies it in errors.
    pub fn compile_text(&mut self, name: &str, text: &str) -> Result<ValueTemplate, CompileError> {
        if !has_template_syntax(text) {
            return Ok(ValueTemplate::Literal(serde_json::Value::String(
                text.to_owned(),
            )));
        }
        let name = self.unique_name(name);
        if let Some(expression) = sole_expression(text) {
            let source = format!("{{{{ ({expression}) | {NATIVE_FILTER} }}}}");
            self.env
                .add_template_owned(name.clone(), source)
                .map_err(|error| compile_error(&error, ""))?;
            return Ok(ValueTemplate::Expression(Expression {
                name,
                shortcut: Shortcut::parse(expression),
            }));
        }
        self.env
            .add_template_owned(name.clone(), text.to_owned())
            .map_err(|error| compile_error(&error, ""))?;
        Ok(ValueTemplate::Text(TextTemplate {
            name,
            shortcut: TextShortcut::parse(text),
        }))
    }

    /// Compiles a YAML tree whose string leaves may be templates.
    pub fn compile_value(
        &mut self,
        name: &str,
        value: &serde_yaml::Value,
    ) -> Result<ValueTemplate, CompileError> {
        use serde_yaml::Value as Yaml;
        let prefix_path = |mut error: CompileError, segment: String| {
            error.path = format!("{segment}{}", error.path);
            error
        };
        match value {
            Yaml::String(text) => self.compile_text(name, text),
            Yaml::Sequence(items) => {
                let mut compiled = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    let item = self
                        .compile_value(&format!("{name}[{index}]"), item)
                        .map_err(|error| prefix_path(error, format!("[{index}]")))?;
                    compiled.push(item);
                }
                Ok(ValueTemplate::List(compiled))
            }
            Yaml::Mapping(map) => {
                let mut compiled = Vec::with_capacity(map.len());
                for (key, item) in map {
                    let key = yaml_key(key).ok_or_else(|| CompileError {
                        path: String::new(),
                        line_offset: 0,
                        message: "map keys must be strings, numbers or booleans".into(),
                    })?;
                    let item = self
                        .compile_value(&format!("{name}.{key}"), item)
                        .map_err(|error| prefix_path(error, format!(".{key}")))?;
                    compiled.push((key, item));
                }
                Ok(ValueTemplate::Map(compiled))
            }
            Yaml::Tagged(tagged) => self.compile_value(name, &tagged.value),
            literal => {
                let json = serde_json::to_value(literal).map_err(|error| CompileError {
                    path: String::new(),
                    line_offset: 0,
                    message: format!("value cannot be represented as JSON: {error}"),
                })?;
                Ok(ValueTemplate::Literal(json))
            }
        }
    }

    /// Compiles a `when:` expression (written without `{{ }}`).
    pub fn compile_condition(
        &mut self,
        name: &str,
        expression: &str,
    ) -> Result<Condition, CompileError> {
        if has_template_syntax(expression) {
            return Err(CompileError {
                path: String::new(),
                line_offset: 0,
                message: "`when:` takes a bare expression; remove the `{{ }}`".into(),
            });
        }
        let source = format!("{{% if {expression} %}}1{{% endif %}}");
        let name = self.unique_name(name);
        self.env
            .add_template_owned(name.clone(), source)
            .map_err(|error| compile_error(&error, ""))?;
        Ok(Condition {
            name,
            path: plain_path(expression.trim()),
        })
    }

    /// Renders a compiled value against `context`.
    pub fn render(
        &self,
        template: &ValueTemplate,
        context: &TemplateValue,
    ) -> Result<serde_json::Value, RenderError> {
        match template {
            ValueTemplate::Literal(value) => Ok(value.clone()),
            ValueTemplate::Expression(expression) => {
                if let Some(value) = expression
                    .shortcut
                    .as_ref()
                    .and_then(|shortcut| shortcut.evaluate(context, &expression.name))
                {
                    return Ok(value);
                }
                let json = self.render_named(&expression.name, context)?;
                Ok(serde_json::from_str(&json)?)
            }
            ValueTemplate::Text(text) => {
                if let Some(rendered) = text
                    .shortcut
                    .as_ref()
                    .and_then(|shortcut| shortcut.evaluate(context, self.limits.max_output_bytes))
                {
                    return Ok(serde_json::Value::String(rendered));
                }
                Ok(serde_json::Value::String(
                    self.render_named(&text.name, context)?,
                ))
            }
            ValueTemplate::List(items) => items
                .iter()
                .map(|item| self.render(item, context))
                .collect::<Result<Vec<_>, _>>()
                .map(serde_json::Value::Array),
            ValueTemplate::Map(entries) => {
                let mut map = serde_json::Map::with_capacity(entries.len());
                for (key, item) in entries {
                    map.insert(key.clone(), self.render(item, context)?);
                }
                Ok(serde_json::Value::Object(map))
            }
        }
    }

    /// Renders a template that must produce a string (URLs, keys, headers).
    pub fn render_string(
        &self,
        template: &ValueTemplate,
        context: &TemplateValue,
    ) -> Result<String, RenderError> {
        Ok(match self.render(template, context)? {
            serde_json::Value::String(text) => text,
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        })
    }

    /// Evaluates a condition.
    pub fn test(
        &self,
        condition: &Condition,
        context: &TemplateValue,
    ) -> Result<bool, RenderError> {
        if let Some(value) = condition
            .path
            .as_deref()
            .and_then(|path| shortcut::look_up(context, path))
        {
            return Ok(is_true(&value));
        }
        Ok(self.render_named(&condition.name, context)? == "1")
    }

    /// The variables a `when:` condition reads (see [`TemplateEnvironment::variables`]).
    pub fn condition_variables(&self, condition: &Condition) -> std::collections::BTreeSet<String> {
        self.env
            .get_template(&condition.name)
            .map(|compiled| compiled.undeclared_variables(true).into_iter().collect())
            .unwrap_or_default()
    }

    /// The filters and tests `source` applies that this environment does not have, each with
    /// the closest one it has, if any. `in_expression` for a bare `when:` expression.
    pub fn unknown_callables(
        &mut self,
        source: &str,
        in_expression: bool,
    ) -> Vec<(names::Callable, Option<String>)> {
        let mut unknown = Vec::new();
        for callable in names::callables(source, in_expression) {
            if !self.known.has(&self.env, &callable) {
                let closest = self.known.closest(&self.env, &callable);
                unknown.push((callable, closest));
            }
        }
        unknown
    }

    /// Whether `name` is a function every template may call (`uuid`, `now`, `range`, ...).
    pub fn is_global(&mut self, name: &str) -> bool {
        self.known.is_global(&self.env, name)
    }

    /// The variables `template` reads, as dotted paths where they are written as such
    /// (`data.amount`, `env.BILLING_URL`), found without rendering it.
    pub fn variables(&self, template: &ValueTemplate) -> std::collections::BTreeSet<String> {
        let mut found = std::collections::BTreeSet::new();
        self.collect_variables(template, &mut found);
        found
    }

    fn collect_variables(
        &self,
        template: &ValueTemplate,
        found: &mut std::collections::BTreeSet<String>,
    ) {
        let name = match template {
            ValueTemplate::Literal(_) => return,
            ValueTemplate::Expression(expression) => &expression.name,
            ValueTemplate::Text(text) => &text.name,
            ValueTemplate::List(items) => {
                for item in items {
                    self.collect_variables(item, found);
                }
                return;
            }
            ValueTemplate::Map(entries) => {
                for (_, item) in entries {
                    self.collect_variables(item, found);
                }
                return;
            }
        };
        if let Ok(compiled) = self.env.get_template(name) {
            found.extend(compiled.undeclared_variables(true));
        }
    }

    /// Records where the template `template` (a leaf) is written, for its render errors to
    /// say.
    pub fn locate(&mut self, template: &ValueTemplate, location: TemplateLocation) {
        let name = match template {
            ValueTemplate::Expression(expression) => &expression.name,
            ValueTemplate::Text(text) => &text.name,
            _ => return,
        };
        self.locations.insert(name.clone(), location);
    }

    /// Records where a `when:` is written (see [`TemplateEnvironment::locate`]).
    pub fn locate_condition(&mut self, condition: &Condition, location: TemplateLocation) {
        self.locations.insert(condition.name.clone(), location);
    }

    fn render_named(&self, name: &str, context: &TemplateValue) -> Result<String, RenderError> {
        let failure = |error: minijinja::Error, source: Option<&str>| {
            RenderError::Template(TemplateFailure::new(
                &error,
                name,
                source,
                self.locations.get(name),
            ))
        };
        let template = self
            .env
            .get_template(name)
            .map_err(|error| failure(error, None))?;
        let output = template
            .render(context)
            .map_err(|error| failure(error, Some(template.source())))?;
        if output.len() > self.limits.max_output_bytes {
            return Err(RenderError::TooLarge {
                actual: output.len(),
                limit: self.limits.max_output_bytes,
            });
        }
        Ok(output)
    }
}

/// Jinja's truth of a JSON value: empty, zero, false and null are false.
fn is_true(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(flag) => *flag,
        serde_json::Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        serde_json::Value::String(text) => !text.is_empty(),
        serde_json::Value::Array(items) => !items.is_empty(),
        serde_json::Value::Object(map) => !map.is_empty(),
    }
}

fn yaml_key(key: &serde_yaml::Value) -> Option<String> {
    match key {
        serde_yaml::Value::String(text) => Some(text.clone()),
        serde_yaml::Value::Number(number) => Some(number.to_string()),
        serde_yaml::Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;
    use serde_json::json;

    fn environment() -> TemplateEnvironment {
        TemplateEnvironment::new(TemplateLimits::default())
    }

    fn event_context() -> TemplateValue {
        let data = json!({"name": "Acme {{ 7*7 }}", "amount": 12.5, "count": 3, "missing": null});
        context! {
            event => TemplateValue::from_serialize(json!({"eventId": "e-1", "timestamp": "2026-12-07T01:02:03.456Z", "eventType": "CUSTOMER_CREATED", "data": data.clone()})),
            data => TemplateValue::from_serialize(&data),
            steps => TemplateValue::from_serialize(json!({"customer": {"id": "c1"}})),
            env => TemplateValue::from_serialize(json!({"REGION": "eu"})),
        }
    }

    #[test]
    fn a_sole_expression_keeps_its_type() {
        let mut env = environment();
        let amount = env.compile_text("a", "{{ data.amount }}").unwrap();
        let count = env.compile_text("b", "{{ data.count + 1 }}").unwrap();
        let null = env.compile_text("c", "{{ data.missing }}").unwrap();
        let context = event_context();
        assert_eq!(env.render(&amount, &context).unwrap(), json!(12.5));
        assert_eq!(env.render(&count, &context).unwrap(), json!(4));
        assert_eq!(env.render(&null, &context).unwrap(), json!(null));
    }

    #[test]
    fn random_uuids_are_version_7_in_the_order_they_were_made() {
        let mut env = environment();
        let id = env.compile_text("id", "{{ random_uuid() }}").unwrap();
        let ids: Vec<uuid::Uuid> = (0..200)
            .map(|_| {
                let rendered = env.render(&id, &event_context()).unwrap();
                uuid::Uuid::parse_str(rendered.as_str().unwrap()).unwrap()
            })
            .collect();
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
        assert!(
            ids.windows(2)
                .all(|pair| pair[0].to_string() < pair[1].to_string()),
            "each id sorts after the one before, as text too"
        );
    }

    /// A context like `event_context`, for another event id or inside `for_each` rows.
    fn context_of(event_id: &str, rows: Option<Vec<usize>>) -> TemplateValue {
        let event = json!({"eventId": event_id, "timestamp": "2026-12-07T01:02:03.456Z"});
        match rows {
            None => context! { event => TemplateValue::from_serialize(event) },
            Some(rows) => TemplateValue::from(
                [
                    ("event", TemplateValue::from_serialize(event)),
                    (ITERATIONS_VARIABLE, TemplateValue::from(rows)),
                ]
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
            ),
        }
    }

    #[test]
    fn uuid_is_the_same_on_every_attempt_and_differs_by_event_place_row_and_call() {
        let rendered = |env: &mut TemplateEnvironment, name: &str, text: &str, context| {
            let compiled = env.compile_text(name, text).unwrap();
            env.render(&compiled, &context).unwrap()
        };
        let mut env = environment();
        let first = rendered(
            &mut env,
            "r:actions[0].id",
            "{{ uuid() }}",
            context_of("e-1", None),
        );
        // A retry renders the same template again, after a reload registers it anew.
        let mut reloaded = environment();
        reloaded.compile_text("other", "{{ 1 }}").unwrap();
        let retried = rendered(
            &mut reloaded,
            "r:actions[0].id",
            "{{ uuid() }}",
            context_of("e-1", None),
        );
        assert_eq!(first, retried);
        let id = uuid::Uuid::parse_str(first.as_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 7);
        let (seconds, nanos) = id.get_timestamp().unwrap().to_unix();
        assert_eq!(
            (seconds, nanos / 1_000_000),
            (1_796_605_323, 456),
            "the event's time leads"
        );

        let others = [
            rendered(
                &mut env,
                "r:actions[0].id",
                "{{ uuid() }}",
                context_of("e-2", None),
            ),
            rendered(
                &mut env,
                "r:actions[1].id",
                "{{ uuid() }}",
                context_of("e-1", None),
            ),
            rendered(
                &mut env,
                "r:actions[0].id",
                "{{ uuid() }}",
                context_of("e-1", Some(vec![0])),
            ),
            rendered(
                &mut env,
                "r:actions[0].id",
                "{{ uuid() }}",
                context_of("e-1", Some(vec![1])),
            ),
        ];
        let mut all: Vec<_> = others.iter().chain([&first]).collect();
        all.sort_by_key(|id| id.to_string());
        all.dedup();
        assert_eq!(all.len(), 5, "{others:?} {first}");

        let two = rendered(
            &mut env,
            "r:actions[0].id",
            "{{ uuid() }} {{ uuid() }}",
            context_of("e-1", None),
        );
        let two = two.as_str().unwrap();
        let (a, b) = two.split_once(' ').unwrap();
        assert_ne!(a, b);
        assert_eq!(
            a,
            first.as_str().unwrap(),
            "the first call in a template is the sole expression's"
        );
        assert_eq!(
            two,
            rendered(
                &mut env,
                "r:actions[0].id",
                "{{ uuid() }} {{ uuid() }}",
                context_of("e-1", None)
            )
        );
    }

    #[test]
    fn variables_are_found_without_rendering() {
        let mut env = environment();
        let value = env
            .compile_value(
                "v",
                &serde_yaml::from_str("{url: '{{ env.HOOK }}/{{ data.id }}', list: ['{{ steps.a.b | upper }}', 5], text: plain}").unwrap(),
            )
            .unwrap();
        let found: Vec<String> = env.variables(&value).into_iter().collect();
        assert_eq!(found, ["data.id", "env.HOOK", "steps.a.b"]);
    }

    #[test]
    fn mixed_text_renders_to_a_string_and_event_data_is_never_evaluated() {
        let mut env = environment();
        let title = env
            .compile_text("t", "初回コンタクト: {{ data.name }}")
            .unwrap();
        assert_eq!(
            env.render(&title, &event_context()).unwrap(),
            json!("初回コンタクト: Acme {{ 7*7 }}")
        );
    }

    #[test]
    fn keys_containing_dots_do_not_replace_other_templates() {
        let mut env = environment();
        let value = env
            .compile_value(
                "v",
                &serde_yaml::from_str("{'a.b': '{{ 1 }}', a: {b: '{{ 2 }}'}}").unwrap(),
            )
            .unwrap();
        assert_eq!(
            env.render(&value, &event_context()).unwrap(),
            json!({"a.b": 1, "a": {"b": 2}})
        );
    }

    #[test]
    fn context_exposes_event_steps_and_env() {
        let mut env = environment();
        let value = env
            .compile_value(
                "v",
                &serde_yaml::from_str("{type: '{{ event.eventType }}', customer: '{{ steps.customer.id }}', region: '{{ env.REGION }}', n: 5, list: ['{{ data.count }}']}").unwrap(),
            )
            .unwrap();
        assert_eq!(
            env.render(&value, &event_context()).unwrap(),
            json!({"type": "CUSTOMER_CREATED", "customer": "c1", "region": "eu", "n": 5, "list": [3]})
        );
    }

    /// The same template with its shortcut removed: what the shortcut must agree with.
    fn without_shortcut(template: &ValueTemplate) -> ValueTemplate {
        match template {
            ValueTemplate::Expression(expression) => ValueTemplate::Expression(Expression {
                shortcut: None,
                ..expression.clone()
            }),
            ValueTemplate::Text(text) => ValueTemplate::Text(TextTemplate {
                shortcut: None,
                ..text.clone()
            }),
            other => other.clone(),
        }
    }

    #[test]
    fn shortcuts_give_exactly_what_the_template_gives() {
        let texts = [
            "{{ data.name }}",
            "{{ data.amount }}",
            "{{ data.count }}",
            "{{ data.missing }}",
            "{{ data }}",
            "{{ event }}",
            "{{ event.data.name }}",
            "{{ steps.customer.id }}",
            "{{ env.REGION }}",
            "{{ steps.customer.id.nothing }}",
            "{{ data.name.upper }}",
            "{{ none }}",
            "{{ true }}",
            "{{ data.missing | default(none) }}",
            "{{ data.absent | default(none) }}",
            "{{ data.name | default(none) }}",
            "{{ absent | default(none) }}",
            "{{ data.absent.deeper | default(none) }}",
            "{{ data.name.deeper | default(none) }}",
            "{{ data.count | default(none) }}",
            "{{ data.absent | default(0) }}",
            "初回コンタクト: {{ data.name }}",
            "{{ data.name }} and {{ steps.customer.id }}!",
            "count {{ data.count }}",
            "amount {{ data.amount }}",
            "missing {{ data.missing }}",
            "absent {{ data.absent }}",
            "{{ data.name }}{{ env.REGION }}",
            "line\n{{ data.name }}\n",
            "{{- data.name }} x",
            "{{ data.name }} {% if true %}y{% endif %}",
            "}} {{ data.name }}",
        ];
        let context = event_context();
        for text in texts {
            let mut env = environment();
            let compiled = env.compile_text("e", text).unwrap();
            let fast = env.render(&compiled, &context);
            let slow = env.render(&without_shortcut(&compiled), &context);
            match (fast, slow) {
                (Ok(fast), Ok(slow)) => assert_eq!(fast, slow, "{text}"),
                (Err(fast), Err(slow)) => assert_eq!(fast.to_string(), slow.to_string(), "{text}"),
                (fast, slow) => panic!("{text}: {fast:?} but the template gives {slow:?}"),
            }
        }
    }

    #[test]
    fn shortcuts_cover_the_common_forms_and_nothing_else() {
        let mut env = environment();
        let mut has_shortcut = |text: &str| match env.compile_text("e", text).unwrap() {
            ValueTemplate::Expression(expression) => expression.shortcut.is_some(),
            ValueTemplate::Text(text) => text.shortcut.is_some(),
            _ => panic!("{text} is a template"),
        };
        for text in [
            "{{ data.name }}",
            "{{ uuid() }}",
            "{{ random_uuid() }}",
            "{{ now() }}",
            "{{ today() }}",
            "{{ now() | add_days(3) }}",
            "{{ today() | add_hours(-2) }}",
            "{{ data.ownerId | default(none) }}",
            "初回コンタクト: {{ data.name }}",
        ] {
            assert!(has_shortcut(text), "{text}");
        }
        for text in [
            "{{ data.count + 1 }}",
            "{{ data['name'] }}",
            "{{ now() | add_days(data.count) }}",
            "{{ now() | add_days(1.5) }}",
            "{{ now() | date }}",
            "{{ data.name | upper }}",
            "{{ data.name | default('x') }}",
            "{{ uuid() | default(none) }}",
            "a {{ data.name | upper }}",
            "a {{- data.name }}",
            "{{ data.name }} {% if true %}y{% endif %}",
        ] {
            assert!(!has_shortcut(text), "{text}");
        }
    }

    #[test]
    fn function_shortcuts_call_the_functions_the_templates_call() {
        let mut env = environment();
        let context = event_context();
        let render = |env: &mut TemplateEnvironment, text: &str| {
            let compiled = env.compile_text("e", text).unwrap();
            let fast = env.render(&compiled, &context).unwrap();
            let slow = env.render(&without_shortcut(&compiled), &context).unwrap();
            (
                fast.as_str().unwrap().to_owned(),
                slow.as_str().unwrap().to_owned(),
            )
        };
        let (fast, slow) = render(&mut env, "{{ uuid() }}");
        assert_eq!(fast, slow);
        let (fast, slow) = render(&mut env, "{{ random_uuid() }}");
        for id in [&fast, &slow] {
            assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
        }
        assert_ne!(fast, slow);
        let (fast, slow) = render(&mut env, "{{ now() | add_days(3) }}");
        let parse = |text: &str| chrono::DateTime::parse_from_rfc3339(text).unwrap();
        let in_three_days = chrono::Utc::now() + chrono::Duration::days(3);
        for shifted in [&fast, &slow] {
            assert!(
                (parse(shifted).to_utc() - in_three_days)
                    .num_seconds()
                    .abs()
                    < 5,
                "{shifted}"
            );
            assert!(
                shifted.ends_with('Z') && shifted.len() == fast.len(),
                "{shifted} {fast}"
            );
        }
        let (fast, slow) = render(&mut env, "{{ today() }}");
        assert_eq!(fast.len(), 10);
        assert!(fast <= slow, "{fast} {slow}");
    }

    #[test]
    fn plain_path_conditions_follow_the_templates_truth() {
        let context = event_context();
        for expression in [
            "data.name",
            "data.missing",
            "data.count",
            "steps.customer",
            "steps.absent",
            "data.name.upper",
            "event.data",
        ] {
            let mut env = environment();
            let condition = env.compile_condition("c", expression).unwrap();
            let fast = env.test(&condition, &context);
            let slow = env.test(
                &Condition {
                    path: None,
                    ..condition.clone()
                },
                &context,
            );
            match (fast, slow) {
                (Ok(fast), Ok(slow)) => assert_eq!(fast, slow, "{expression}"),
                (Err(fast), Err(slow)) => assert_eq!(fast.to_string(), slow.to_string()),
                (fast, slow) => panic!("{expression}: {fast:?} but the template gives {slow:?}"),
            }
        }
        assert_eq!(plain_path("steps.customer.id").unwrap().len(), 3);
        for not_plain in [
            "none",
            "data.none",
            "data.count + 1",
            "data['name']",
            "now()",
            "a..b",
            "",
        ] {
            assert_eq!(plain_path(not_plain), None, "{not_plain}");
        }
    }

    #[test]
    fn undefined_variables_are_errors_not_empty_strings() {
        let mut env = environment();
        let text = env.compile_text("t", "Hello {{ data.nmae }}").unwrap();
        let expression = env.compile_text("e", "{{ env.SECRET }}").unwrap();
        let context = event_context();
        let error = env.render(&text, &context).unwrap_err().to_string();
        assert!(error.contains("undefined"), "{error}");
        assert!(env.render(&expression, &context).is_err());
    }

    #[test]
    fn render_errors_name_the_expression_and_the_place_and_no_values() {
        let mut env = environment();
        let url = env
            .compile_text(
                "billing:actions[1].http.url",
                "{{ env.BILLING_URL }}/invoices/{{ data.name }}",
            )
            .unwrap();
        env.locate(
            &url,
            TemplateLocation {
                at: "routes/billing.yaml:10:16".into(),
                variables: vec![
                    ("data.name".into(), "routes/billing.yaml:10:52".into()),
                    ("env.BILLING_URL".into(), "routes/billing.yaml:10:20".into()),
                ],
            },
        );
        let id = env
            .compile_text("billing:actions[2].emit.key", "{{ steps.invoce.id }}")
            .unwrap();
        let context = event_context();
        assert_eq!(
            env.render(&url, &context).unwrap_err().to_string(),
            "undefined value `env.BILLING_URL` (routes/billing.yaml:10:20, billing actions[1].http.url)"
        );
        let error = env.render(&id, &context).unwrap_err().to_string();
        assert_eq!(
            error,
            "undefined value `steps.invoce.id` (billing actions[2].emit.key)"
        );
        let sum = env
            .compile_text("billing:total", "{{ data.name + 1 }}")
            .unwrap();
        let error = env.render(&sum, &context).unwrap_err().to_string();
        assert!(error.starts_with("invalid operation: "), "{error}");
        assert!(error.contains("`data.name + 1`"), "{error}");
        assert!(
            !error.contains("Acme") && !error.contains("eu"),
            "no values: {error}"
        );
    }

    #[test]
    fn syntax_errors_fail_at_compile_time_with_a_line() {
        let mut env = environment();
        let error = env
            .compile_text("t", "line one\n{{ data.name ")
            .unwrap_err();
        assert!(error.message.contains("syntax error"), "{}", error.message);
        assert_eq!(error.line_offset, 1);
        let error = env.compile_condition("c", "{{ data.x }}").unwrap_err();
        assert!(error.message.contains("bare expression"));
    }

    #[test]
    fn conditions_follow_jinja_truthiness() {
        let mut env = environment();
        let yes = env
            .compile_condition(
                "y",
                "data.count > 2 and event.eventType == 'CUSTOMER_CREATED'",
            )
            .unwrap();
        let no = env.compile_condition("n", "data.missing").unwrap();
        let context = event_context();
        assert!(env.test(&yes, &context).unwrap());
        assert!(!env.test(&no, &context).unwrap());
    }

    #[test]
    fn runaway_templates_run_out_of_fuel_and_output_is_bounded() {
        let mut env = TemplateEnvironment::new(TemplateLimits {
            fuel: 1_000,
            max_output_bytes: 100,
        });
        let looping = env
            .compile_text("l", "{% for i in range(100000) %}{{ i }}{% endfor %}")
            .unwrap();
        assert!(env.render(&looping, &event_context()).is_err());
        let big = env
            .compile_text("b", "{{ 'x' * 50 }}{{ 'y' * 60 }}")
            .unwrap();
        assert!(matches!(
            env.render(&big, &event_context()),
            Err(RenderError::TooLarge { .. })
        ));
    }
}
