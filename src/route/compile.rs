//! Turns route definitions into executable routes, collecting every problem with its position.

use std::collections::BTreeSet;
use std::path::Path;

use crate::action::Step;
use crate::engine::retry::RetryPolicy;
use crate::route::diagnostic::{did_you_mean, Diagnostic, Position};
use crate::route::ident::Ident;
use crate::route::model::{ActionDef, RetryDef, ValueMap};
use crate::route::reads::{DataShape, Described, StepShape, TemplateScope};
use crate::route::source_map::SourceMap;
use crate::store::catalog::Column;
use crate::store::column_type::{with_article, SUPPORTED};
use crate::store::sql::FilterOp;
use crate::store::{Catalog, ColumnType};
use crate::template::names::Callable;
use crate::template::{
    CompileError, Condition, TemplateEnvironment, TemplateLocation, ValueTemplate,
};

/// A column a route writes, with the type the catalog gives it and the compiled value.
#[derive(Debug, Clone)]
pub struct ColumnValue {
    /// The column.
    pub column: Ident,
    /// What the column holds ([`ColumnType::Untyped`] when no catalog is known).
    pub column_type: ColumnType,
    /// The value written.
    pub value: ValueTemplate,
    /// Where the value is written in its route file (`FILE:LINE:COL`), for run-time errors.
    pub at: String,
}

/// State shared while compiling the routes of one file.
pub struct Compiler<'a> {
    templates: &'a mut TemplateEnvironment,
    catalog: Option<&'a Catalog>,
    file: &'a Path,
    /// The file's text, to point at a name inside a template.
    text: &'a str,
    source: &'a SourceMap,
    diagnostics: &'a mut Vec<Diagnostic>,
    /// What the templates compiled next may read.
    scope: TemplateScope,
    route: String,
    /// The policy an action's own `retry:` builds on; `None` in a scheduled route, where
    /// `retry:` does not apply.
    retry_base: Option<RetryPolicy>,
}

impl<'a> Compiler<'a> {
    /// A compiler for one file (`text`, indexed as `source`). `env_allow` is what `env.*` may
    /// name (`None`: not checked).
    pub fn new(
        templates: &'a mut TemplateEnvironment,
        catalog: Option<&'a Catalog>,
        file: &'a Path,
        text: &'a str,
        source: &'a SourceMap,
        diagnostics: &'a mut Vec<Diagnostic>,
        env_allow: Option<Vec<String>>,
    ) -> Self {
        Self {
            templates,
            catalog,
            file,
            text,
            source,
            diagnostics,
            scope: TemplateScope::new(env_allow),
            route: String::new(),
            retry_base: Some(RetryPolicy::default()),
        }
    }

    /// Sets the route whose parts are compiled next (names its templates), whose events
    /// carry `data`.
    pub fn set_route(&mut self, name: &str, data: DataShape) {
        self.route = name.to_owned();
        self.scope.begin_route(data);
    }

    /// Steps compiled after this one may read `steps.<name>`, holding `shape`.
    pub fn bind_step(&mut self, name: &str, shape: StepShape) {
        self.scope.bind_step(name, shape);
    }

    /// What a `when:` reads guards the reads of its step, until [`Compiler::pop_guards`].
    pub fn push_guards(&mut self, condition: Option<&Condition>) {
        let variables = condition
            .map(|condition| self.templates.condition_variables(condition))
            .unwrap_or_default();
        self.scope.push_guards(variables);
    }

    /// Ends the guard of the step compiled last.
    pub fn pop_guards(&mut self) {
        self.scope.pop_guards();
    }

    /// The steps compiled next run once per row of `rows` (a query's `for_each`).
    pub fn enter_rows(&mut self, rows: Option<Described>) {
        self.scope.enter_rows(rows);
    }

    /// Ends the innermost `for_each`.
    pub fn leave_rows(&mut self) {
        self.scope.leave_rows();
    }

    /// `table` with its columns, when the catalog knows it.
    pub fn described(&self, table: &str) -> Option<Described> {
        let columns = self.catalog?.columns(table)?;
        Some(Described {
            table: table.to_owned(),
            columns: columns.iter().map(|column| column.name.clone()).collect(),
        })
    }

    /// Reports what the template at `path` (written as `text`) reads that cannot exist there,
    /// and the filters and tests it applies that do not exist.
    fn check_reads(
        &mut self,
        path: &str,
        text: &str,
        variables: &BTreeSet<String>,
        in_expression: bool,
    ) {
        let templates = &mut *self.templates;
        let problems = self
            .scope
            .check(variables, text, |name| templates.is_global(name));
        let unknown = templates.unknown_callables(text, in_expression);
        for problem in problems {
            let position = self.position_in(path, &problem.variable);
            let mut diagnostic = Diagnostic::at(self.file, position, problem.message);
            diagnostic.hint = problem.hint;
            self.diagnostics.push(diagnostic);
        }
        for (callable, closest) in unknown {
            let (kind, name) = match &callable {
                Callable::Filter(name) => ("filter", name),
                Callable::Test(name) => ("test", name),
            };
            let position = self.position_in(path, name);
            let mut diagnostic =
                Diagnostic::at(self.file, position, format!("unknown {kind} {name}"));
            diagnostic.hint = closest.map(|close| format!("did you mean {close}?"));
            self.diagnostics.push(diagnostic);
        }
    }

    /// Checks each template leaf of a compiled YAML tree at its own place, and records where
    /// it is written.
    fn check_tree_reads(
        &mut self,
        path: &str,
        value: &serde_yaml::Value,
        compiled: &ValueTemplate,
    ) {
        use serde_yaml::Value as Yaml;
        match (value, compiled) {
            (Yaml::String(text), ValueTemplate::Expression(_) | ValueTemplate::Text(_)) => {
                let variables = self.templates.variables(compiled);
                self.check_reads(path, text, &variables, false);
                let location = self.template_location(path, &variables);
                self.templates.locate(compiled, location);
            }
            (Yaml::Sequence(items), ValueTemplate::List(compiled_items)) => {
                for (index, (item, compiled_item)) in items.iter().zip(compiled_items).enumerate() {
                    self.check_tree_reads(&format!("{path}[{index}]"), item, compiled_item);
                }
            }
            (Yaml::Mapping(map), ValueTemplate::Map(entries)) => {
                for ((_, item), (key, compiled_item)) in map.iter().zip(entries) {
                    self.check_tree_reads(&format!("{path}.{key}"), item, compiled_item);
                }
            }
            (Yaml::Tagged(tagged), _) => self.check_tree_reads(path, &tagged.value, compiled),
            _ => {}
        }
    }

    /// Where `needle` is written in the template at `path`: searched from the template's start
    /// over the lines it may span, as a whole name; the template's start when not found.
    fn position_in(&self, path: &str, needle: &str) -> Position {
        let start = self.source.value(path);
        let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let lines = self
            .text
            .lines()
            .skip(start.line.saturating_sub(1))
            .take(50);
        for (offset, line) in lines.enumerate() {
            // On the template's first line, only what follows its start.
            let from = if offset == 0 {
                line.char_indices()
                    .nth(start.column.saturating_sub(1))
                    .map_or(line.len(), |(byte, _)| byte)
            } else {
                0
            };
            let mut at = from;
            while let Some(found) = line[at..].find(needle) {
                let begin = at + found;
                let end = begin + needle.len();
                let before = line[..begin].chars().next_back();
                let after = line[end..].chars().next();
                if !before.is_some_and(|c| is_name(c) || c == '.') && !after.is_some_and(is_name) {
                    return Position {
                        line: start.line + offset,
                        column: line[..begin].chars().count() + 1,
                    };
                }
                at = end;
            }
        }
        start
    }

    /// Sets the route's retry policy, on which actions' own `retry:` build; `None` for a
    /// scheduled route, whose actions may not have one.
    pub fn set_retry_base(&mut self, base: Option<RetryPolicy>) {
        self.retry_base = base;
    }

    /// Compiles an action's own `retry:` at `path`.
    pub fn action_retry(&mut self, path: &str, def: &RetryDef) -> Option<RetryPolicy> {
        let Some(base) = self.retry_base else {
            self.error(
                path,
                "`retry` does not apply to the actions of a scheduled route",
                Some("a failed run is dead-lettered and the next tick runs the route again; remove `retry`".into()),
            );
            return None;
        };
        match RetryPolicy::from_def(def, base) {
            Ok(policy) => Some(policy),
            Err(error) => {
                self.error(path, error, None);
                None
            }
        }
    }

    /// Where the template at `path` and each of its `variables` are written, for its render
    /// errors.
    fn template_location(&self, path: &str, variables: &BTreeSet<String>) -> TemplateLocation {
        let shown = |position: Position| {
            format!(
                "{}:{}:{}",
                self.file.display(),
                position.line,
                position.column
            )
        };
        TemplateLocation {
            at: self.location(path),
            variables: variables
                .iter()
                .map(|variable| (variable.clone(), shown(self.position_in(path, variable))))
                .collect(),
        }
    }

    /// `FILE:LINE:COL` of the value at `path`, for errors found at run time.
    pub fn location(&self, path: &str) -> String {
        let position = self.source.value(path);
        format!(
            "{}:{}:{}",
            self.file.display(),
            position.line,
            position.column
        )
    }

    /// Reports a problem at the key that names `path`.
    pub fn error(&mut self, path: &str, message: impl Into<String>, hint: Option<String>) {
        let mut diagnostic = Diagnostic::at(self.file, self.source.key(path), message);
        diagnostic.hint = hint;
        self.diagnostics.push(diagnostic);
    }

    fn template_error(&mut self, path: &str, error: CompileError) {
        let full_path = format!("{path}{}", error.path);
        let mut position = self.source.value(&full_path);
        if error.line_offset > 0 {
            position.line += error.line_offset;
            position.column = 1;
        }
        self.diagnostics.push(Diagnostic::at(
            self.file,
            position,
            format!("{} (in {})", error.message, display_path(&full_path)),
        ));
    }

    fn template_name(&self, path: &str) -> String {
        format!("{}:{}", self.route, display_path(path))
    }

    /// Compiles a string template.
    pub fn text(&mut self, path: &str, text: &str) -> Option<ValueTemplate> {
        let name = self.template_name(path);
        match self.templates.compile_text(&name, text) {
            Ok(template) => {
                let variables = self.templates.variables(&template);
                self.check_reads(path, text, &variables, false);
                let location = self.template_location(path, &variables);
                self.templates.locate(&template, location);
                Some(template)
            }
            Err(error) => {
                self.template_error(path, error);
                None
            }
        }
    }

    /// Compiles a YAML tree with template leaves.
    pub fn value(&mut self, path: &str, value: &serde_yaml::Value) -> Option<ValueTemplate> {
        let name = self.template_name(path);
        match self.templates.compile_value(&name, value) {
            Ok(template) => {
                self.check_tree_reads(path, value, &template);
                Some(template)
            }
            Err(error) => {
                self.template_error(path, error);
                None
            }
        }
    }

    /// Compiles a `when:` condition.
    pub fn condition(&mut self, path: &str, expression: &str) -> Option<Condition> {
        let name = self.template_name(path);
        match self.templates.compile_condition(&name, expression) {
            Ok(condition) => {
                let variables = self.templates.condition_variables(&condition);
                self.check_reads(path, expression, &variables, true);
                let location = self.template_location(path, &variables);
                self.templates.locate_condition(&condition, location);
                Some(condition)
            }
            Err(error) => {
                self.template_error(path, error);
                None
            }
        }
    }

    /// Checks a name used under `as:` (it becomes `steps.<name>`).
    pub fn step_name(&mut self, path: &str, name: &str) -> Option<String> {
        match Ident::parse(name) {
            Ok(_) => Some(name.to_owned()),
            Err(error) => {
                self.error(path, format!("invalid `as` name: {error}"), None);
                None
            }
        }
    }

    /// Checks a table name, and that the table exists when a catalog is known.
    pub fn table(&mut self, path: &str, name: &str) -> Option<Ident> {
        let ident = match Ident::parse(name) {
            Ok(ident) => ident,
            Err(error) => {
                self.error(path, format!("invalid table name: {error}"), None);
                return None;
            }
        };
        if let Some(catalog) = self.catalog {
            if catalog.columns(name).is_none() {
                let hint = did_you_mean(name, catalog.table_names())
                    .map(|close| format!("did you mean \"{close}\"?"))
                    .or_else(|| Some("add the table in a migration under --migrations".to_owned()));
                self.error(path, format!("unknown table \"{name}\""), hint);
                return None;
            }
        }
        Some(ident)
    }

    /// Checks a column name of `table`.
    pub fn column(&mut self, path: &str, table: &Ident, name: &str) -> Option<Ident> {
        let ident = match Ident::parse(name) {
            Ok(ident) => ident,
            Err(error) => {
                self.error(path, format!("invalid column name: {error}"), None);
                return None;
            }
        };
        if let Some(columns) = self
            .catalog
            .and_then(|catalog| catalog.columns(table.as_str()))
        {
            if !columns.iter().any(|column| column.name == name) {
                let hint = did_you_mean(name, columns.iter().map(|column| column.name.as_str()))
                    .map(|close| format!("did you mean \"{close}\"?"));
                self.error(
                    path,
                    format!("unknown column \"{name}\" in table {table}"),
                    hint,
                );
                return None;
            }
        }
        Some(ident)
    }

    /// Compiles `column: template` pairs of `table`, checking that each value can fit its
    /// column's type.
    pub fn columns(
        &mut self,
        path: &str,
        table: Option<&Ident>,
        values: &ValueMap,
    ) -> Vec<ColumnValue> {
        let mut compiled = Vec::with_capacity(values.len());
        for (column, value) in values {
            let column_path = format!("{path}.{column}");
            let ident = match table {
                Some(table) => self.column(&column_path, table, column),
                None => Ident::parse(column).ok(),
            };
            let template = self.value(&column_path, value);
            if let (Some(ident), Some(template)) = (ident, template) {
                let column_type = table
                    .map(|table| self.column_type(&column_path, table, &ident))
                    .unwrap_or(ColumnType::Untyped);
                self.check_fits(&column_path, &ident, &column_type, &template);
                compiled.push(ColumnValue {
                    column: ident,
                    column_type,
                    value: template,
                    at: self.location(&column_path),
                });
            }
        }
        compiled
    }

    /// The columns of `table` as the catalog has them (empty without a catalog).
    pub fn table_columns(&self, table: &Ident) -> Vec<Column> {
        self.catalog
            .and_then(|catalog| catalog.columns(table.as_str()))
            .map(<[Column]>::to_vec)
            .unwrap_or_default()
    }

    /// The type of a column a route writes or filters on; a type the daemon cannot write is
    /// reported at `path`.
    pub fn column_type(&mut self, path: &str, table: &Ident, column: &Ident) -> ColumnType {
        let Some(found) = self
            .catalog
            .and_then(|catalog| catalog.columns(table.as_str()))
            .and_then(|columns| columns.iter().find(|known| known.name == column.as_str()))
        else {
            return ColumnType::Untyped;
        };
        if !found.column_type.is_supported() {
            self.error(
                path,
                format!(
                    "column \"{column}\" of table {table} has type {}, which routes cannot write or compare",
                    found.sql_type
                ),
                Some(format!("supported types: {SUPPORTED}")),
            );
        }
        found.column_type.clone()
    }

    /// Reports a `where:` operand that can never be compared with its column: each item of a
    /// list (an `IN`), or the value itself.
    pub fn check_operand(
        &mut self,
        path: &str,
        column: &Ident,
        column_type: &ColumnType,
        op: FilterOp,
        value: &ValueTemplate,
    ) {
        match (op, value) {
            (FilterOp::IsNull, _) => {}
            (_, ValueTemplate::List(items)) => {
                for item in items {
                    self.check_fits(path, column, column_type, item);
                }
            }
            (_, ValueTemplate::Literal(serde_json::Value::Array(items))) => {
                for item in items {
                    let item = ValueTemplate::Literal(item.clone());
                    self.check_fits(path, column, column_type, &item);
                }
            }
            _ => self.check_fits(path, column, column_type, value),
        }
    }

    /// Reports a value that can never fit its column: a literal of the wrong kind, or a list,
    /// map or text template where the column holds none of those.
    fn check_fits(
        &mut self,
        path: &str,
        column: &Ident,
        column_type: &ColumnType,
        value: &ValueTemplate,
    ) {
        if !column_type.is_supported() {
            return;
        }
        let problem = match value {
            ValueTemplate::Literal(literal) => {
                column_type.param(literal.clone()).err().map(|mismatch| {
                    (
                        format!("{} does not fit type {column_type}", mismatch.value),
                        format!(
                            "{} column takes {}",
                            with_article(column_type),
                            mismatch.expected()
                        ),
                    )
                })
            }
            ValueTemplate::List(items) if *column_type == ColumnType::IntegerArray => {
                items.iter().find_map(|item| match item {
                    ValueTemplate::Literal(literal) => ColumnType::BigInt
                        .param(literal.clone())
                        .err()
                        .map(|mismatch| {
                            (
                                format!("the list item {} is not an integer", mismatch.value),
                                format!(
                                    "{} column takes a list of integers",
                                    with_article(column_type)
                                ),
                            )
                        }),
                    _ => None,
                })
            }
            ValueTemplate::Map(_) | ValueTemplate::List(_)
                if !matches!(
                    (column_type, value),
                    (
                        ColumnType::Json
                            | ColumnType::Jsonb
                            | ColumnType::Text
                            | ColumnType::Untyped,
                        _
                    ) | (
                        ColumnType::TextArray | ColumnType::IntegerArray,
                        ValueTemplate::List(_)
                    )
                ) =>
            {
                let shape = if matches!(value, ValueTemplate::Map(_)) {
                    "a map"
                } else {
                    "a list"
                };
                Some((
                    format!("{shape} does not fit type {column_type}"),
                    format!(
                        "write a single value for {} column",
                        with_article(column_type)
                    ),
                ))
            }
            ValueTemplate::Text(_)
                if matches!(
                    column_type,
                    ColumnType::TextArray | ColumnType::IntegerArray
                ) =>
            {
                Some((
                    format!("text does not fit type {column_type}"),
                    "write a list, or a sole `{{ expression }}` that gives one".to_owned(),
                ))
            }
            _ => None,
        };
        if let Some((message, hint)) = problem {
            self.error(
                path,
                format!("value for column \"{column}\" can never be stored: {message}"),
                Some(hint),
            );
        }
    }

    /// Compiles a list of actions at `path` (`routes[0].actions`).
    pub fn steps(&mut self, path: &str, step_prefix: &str, definitions: &[ActionDef]) -> Vec<Step> {
        definitions
            .iter()
            .enumerate()
            .filter_map(|(index, definition)| {
                let step_path = if step_prefix.is_empty() {
                    index.to_string()
                } else {
                    format!("{step_prefix}.{index}")
                };
                Step::compile(self, &format!("{path}[{index}]"), step_path, definition)
            })
            .collect()
    }
}

/// `routes[0].actions[1].insert.values.x` → `actions[1].insert.values.x` (what users recognise).
fn display_path(path: &str) -> &str {
    match path.find("].") {
        Some(cut) if path.starts_with("routes[") => &path[cut + 2..],
        _ => path,
    }
}
