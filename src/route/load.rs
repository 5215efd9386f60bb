//! Loading a whole route set: read every route and schema file, compile everything, and report
//! every problem (not just the first) with file:line:col. Nothing is swapped in unless the whole
//! set is valid; that decision belongs to the caller.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use include_dir::Dir;

use super::compile::Compiler;
use super::diagnostic::{Diagnostic, Position};
use super::model::{RouteDef, RouteFile, TriggerDef, TypeSelector};
use super::reads::DataShape;
use super::source_map::SourceMap;
use super::trigger::{Schedule, TopicPattern, Trigger, TriggerKind, TypeFilter};
use super::{Route, RouteName, RouteSet};
use crate::engine::retry::RetryPolicy;
use crate::schema::{SchemaFile, SchemaRegistry};
use crate::store::Catalog;
use crate::template::{TemplateEnvironment, TemplateLimits, TemplateValue};

/// Route files larger than this are refused before parsing.
pub const MAX_ROUTE_FILE_BYTES: u64 = 1 << 20;

/// Where route or schema files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A directory on disk (watched for changes).
    Directory(PathBuf),
    /// The files compiled into the binary.
    Bundled,
}

impl Source {
    /// For logs: the directory, or `bundled`.
    pub fn describe(&self) -> String {
        match self {
            Self::Directory(path) => path.display().to_string(),
            Self::Bundled => "bundled (compiled into the binary)".into(),
        }
    }
}

/// Inputs of a load.
#[derive(Debug, Clone)]
pub struct LoadOptions<'a> {
    /// Route files.
    pub routes: &'a Source,
    /// Schema files.
    pub schemas: &'a Source,
    /// Tables and columns to check against; `None` skips those checks.
    pub catalog: Option<&'a Catalog>,
    /// The `env` template variable.
    pub env: TemplateValue,
    /// The names `env.*` may read (`env_allow`); `None` leaves `env.*` unchecked.
    pub env_allow: Option<&'a [String]>,
    /// Retry policy of routes without `retry:`.
    pub default_retry: RetryPolicy,
    /// Template limits.
    pub limits: TemplateLimits,
}

struct TextFile {
    path: PathBuf,
    text: String,
}

fn whole_file(path: &Path, message: String) -> Diagnostic {
    Diagnostic::at(path, Position { line: 0, column: 0 }, message)
}

fn read_route_files(source: &Source, diagnostics: &mut Vec<Diagnostic>) -> Vec<TextFile> {
    let is_route_file = |name: &str| name.ends_with(".yaml") || name.ends_with(".yml");
    match source {
        // Only the files at the top, as from a directory: `routes/tests/` holds route tests.
        Source::Bundled => bundled_files(&crate::bundled::ROUTES, |path| {
            is_route_file(&path.to_string_lossy())
                && path
                    .parent()
                    .is_some_and(|parent| parent.as_os_str().is_empty())
        })
        .into_iter()
        .map(|(path, text)| TextFile {
            path: Path::new("<bundled>/routes").join(path),
            text,
        })
        .collect(),
        Source::Directory(directory) => {
            let entries = match fs::read_dir(directory) {
                Ok(entries) => entries,
                Err(error) => {
                    diagnostics.push(whole_file(
                        directory,
                        format!("cannot read route directory: {error}"),
                    ));
                    return Vec::new();
                }
            };
            let mut paths: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.is_file())
                .filter(|path| {
                    path.file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| is_route_file(name) && !name.starts_with('.'))
                })
                .collect();
            paths.sort();
            paths
                .into_iter()
                .filter_map(|path| {
                    read_limited(&path, diagnostics).map(|text| TextFile { path, text })
                })
                .collect()
        }
    }
}

fn read_limited(path: &Path, diagnostics: &mut Vec<Diagnostic>) -> Option<String> {
    let size = match fs::metadata(path) {
        Ok(metadata) => metadata.len(),
        Err(error) => {
            diagnostics.push(whole_file(path, format!("cannot read file: {error}")));
            return None;
        }
    };
    if size > MAX_ROUTE_FILE_BYTES {
        diagnostics.push(whole_file(
            path,
            format!("file is {size} bytes; route and schema files may be at most {MAX_ROUTE_FILE_BYTES} bytes"),
        ));
        return None;
    }
    match fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(_) => {
                diagnostics.push(whole_file(path, "file is not valid UTF-8".into()));
                None
            }
        },
        Err(error) => {
            diagnostics.push(whole_file(path, format!("cannot read file: {error}")));
            None
        }
    }
}

fn bundled_files(
    dir: &'static Dir<'static>,
    keep: impl Fn(&Path) -> bool + Copy,
) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for file in dir.files() {
        if keep(file.path()) {
            if let Some(text) = file.contents_utf8() {
                files.push((file.path().to_owned(), text.to_owned()));
            }
        }
    }
    for sub in dir.dirs() {
        files.extend(bundled_files(sub, keep));
    }
    files.sort();
    files
}

fn read_schema_files(source: &Source, diagnostics: &mut Vec<Diagnostic>) -> Vec<SchemaFile> {
    // Layout: <root>/<topic>/<EVENT_TYPE>.json; files directly under <root> (such as
    // route.schema.json) are not event schemas.
    let to_schema = |path: PathBuf, relative: &Path, text: String| {
        let mut parts = relative.iter();
        let topic = parts.next()?.to_str()?.to_owned();
        let file = parts.next()?.to_str()?;
        if parts.next().is_some() {
            return None;
        }
        let event_type = file.strip_suffix(".json")?.to_owned();
        Some(SchemaFile {
            path,
            topic,
            event_type,
            text,
        })
    };
    match source {
        Source::Bundled => bundled_files(&crate::bundled::SCHEMAS, |path| {
            path.extension().is_some_and(|ext| ext == "json")
        })
        .into_iter()
        .filter_map(|(relative, text)| {
            to_schema(
                Path::new("<bundled>/schemas").join(&relative),
                &relative,
                text,
            )
        })
        .collect(),
        Source::Directory(root) => {
            let Ok(topics) = fs::read_dir(root) else {
                diagnostics.push(whole_file(root, "cannot read schema directory".into()));
                return Vec::new();
            };
            let mut files = Vec::new();
            for topic in topics
                .filter_map(Result::ok)
                .filter(|entry| entry.path().is_dir())
            {
                let Ok(entries) = fs::read_dir(topic.path()) else {
                    continue;
                };
                for entry in entries.filter_map(Result::ok) {
                    let path = entry.path();
                    if path.extension().is_none_or(|ext| ext != "json") || !path.is_file() {
                        continue;
                    }
                    let Ok(relative) = path.strip_prefix(root).map(Path::to_path_buf) else {
                        continue;
                    };
                    if let Some(text) = read_limited(&path, diagnostics) {
                        files.extend(to_schema(path, &relative, text));
                    }
                }
            }
            files.sort_by(|a, b| a.path.cmp(&b.path));
            files
        }
    }
}

fn yaml_error(path: &Path, error: &serde_yaml::Error) -> Diagnostic {
    let mut diagnostic = Diagnostic::from_yaml(path, error);
    let message = &diagnostic.message;
    let hint = if message.contains("unknown field") {
        Some("check the spelling; the route format is in schemas/route.schema.json".to_owned())
    } else if message.contains("recursion limit") || message.contains("repetition limit") {
        Some("the file expands YAML aliases too deeply; write the values out".to_owned())
    } else {
        None
    };
    diagnostic.hint = hint;
    diagnostic
}

/// Loads and compiles everything; `Err` holds every problem found.
pub fn load(options: &LoadOptions<'_>) -> Result<RouteSet, Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    let mut templates = TemplateEnvironment::new(options.limits);
    let mut routes = Vec::new();
    let mut first_definition: HashMap<String, (PathBuf, Position)> = HashMap::new();

    // Schemas first: they tell what each route's `data` holds.
    let schemas = SchemaRegistry::compile(
        read_schema_files(options.schemas, &mut diagnostics),
        &mut diagnostics,
    );
    for file in read_route_files(options.routes, &mut diagnostics) {
        let is_empty = matches!(
            serde_yaml::from_str::<serde_yaml::Value>(&file.text),
            Ok(serde_yaml::Value::Null)
        );
        if is_empty {
            continue;
        }
        let parsed: RouteFile = match serde_yaml::from_str(&file.text) {
            Ok(parsed) => parsed,
            Err(error) => {
                diagnostics.push(yaml_error(&file.path, &error));
                continue;
            }
        };
        let source = SourceMap::build(&file.text);
        let mut compiler = Compiler::new(
            &mut templates,
            options.catalog,
            &file.path,
            &file.text,
            &source,
            &mut diagnostics,
            options.env_allow.map(<[String]>::to_vec),
        );
        for (index, definition) in parsed.routes.iter().enumerate() {
            let path = format!("routes[{index}]");
            // Names are claimed before compiling, so a duplicate is reported even when the
            // first definition has errors of its own.
            let position = source.key(&format!("{path}.name"));
            if let Some((first_file, first_position)) = first_definition.get(&definition.name) {
                compiler.error(
                    &format!("{path}.name"),
                    format!("duplicate route name \"{}\"", definition.name),
                    Some(format!(
                        "first defined at {}:{}:{}; route names must be unique",
                        first_file.display(),
                        first_position.line,
                        first_position.column
                    )),
                );
                continue;
            }
            first_definition.insert(definition.name.clone(), (file.path.clone(), position));
            if let Some(route) = compile_route(
                &mut compiler,
                &path,
                &file.path,
                definition,
                options.default_retry,
                &schemas,
            ) {
                routes.push(route);
            }
        }
    }

    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    crate::action::fold::mark_foldable(&mut routes, options.catalog);
    crate::action::bulk::mark_lockstep(&mut routes, options.catalog);
    Ok(RouteSet {
        routes,
        templates,
        schemas,
        env: options.env.clone(),
        origin: options.routes.describe(),
    })
}

fn compile_route(
    compiler: &mut Compiler<'_>,
    path: &str,
    file: &Path,
    definition: &RouteDef,
    default_retry: RetryPolicy,
    schemas: &SchemaRegistry,
) -> Option<Route> {
    let name = match RouteName::parse(&definition.name) {
        Ok(name) => Some(name),
        Err(error) => {
            compiler.error(&format!("{path}.name"), error.to_string(), None);
            None
        }
    };
    let kind = compile_trigger(compiler, &format!("{path}.on"), &definition.on);
    compiler.set_route(&definition.name, data_shape(kind.as_ref(), schemas));
    let when = match &definition.on.when {
        Some(expression) => compiler
            .condition(&format!("{path}.on.when"), expression)
            .map(Some),
        None => Some(None),
    };
    let scheduled = definition.on.schedule.is_some() && definition.on.topic.is_none();
    let retry = match &definition.retry {
        None => Some(default_retry),
        Some(_) if scheduled => {
            compiler.error(
                &format!("{path}.retry"),
                "`retry` does not apply to a scheduled route",
                Some("a failed run is dead-lettered and the next tick runs the route again; remove `retry`".into()),
            );
            None
        }
        Some(retry) => match RetryPolicy::from_def(retry, default_retry) {
            Ok(policy) => Some(policy),
            Err(error) => {
                compiler.error(&format!("{path}.retry"), error, None);
                None
            }
        },
    };
    if definition.actions.is_empty() {
        compiler.error(
            &format!("{path}.actions"),
            "a route needs at least one action",
            None,
        );
    }
    compiler.set_retry_base(if scheduled {
        None
    } else {
        Some(retry.unwrap_or(default_retry))
    });
    // What the route's own `when:` reads guards all its steps.
    compiler.push_guards(when.as_ref().and_then(Option::as_ref));
    let steps = compiler.steps(&format!("{path}.actions"), "", &definition.actions);
    compiler.pop_guards();
    if steps.len() != definition.actions.len() {
        return None;
    }
    let name = name?;
    let mut kinds = Vec::new();
    action_kinds(&steps, &mut kinds);
    Some(Route {
        metrics: crate::telemetry::RouteMetrics::register(name.as_str(), &kinds),
        name,
        description: definition.description.clone(),
        file: file.to_owned(),
        trigger: Trigger {
            kind: kind?,
            when: when?,
        },
        retry: retry?,
        steps,
        lockstep: false,
        definition: definition.clone(),
    })
}

/// What `data` holds for the events `trigger` takes: known when it names one topic and event
/// types that all have schemas.
fn data_shape(trigger: Option<&TriggerKind>, schemas: &SchemaRegistry) -> DataShape {
    let Some(TriggerKind::Events {
        topic: TopicPattern::Exact(topic),
        types: TypeFilter::OneOf(types),
    }) = trigger
    else {
        return DataShape::Unknown;
    };
    let documents: Option<Vec<_>> = types
        .iter()
        .map(|event_type| {
            let document = schemas.document(topic, event_type)?;
            Some((format!("{topic} {event_type}"), document.clone()))
        })
        .collect();
    documents.map_or(DataShape::Unknown, DataShape::Schemas)
}

/// `on:` has `topic` (and maybe `type`) or `schedule`, never both.
fn compile_trigger(
    compiler: &mut Compiler<'_>,
    path: &str,
    on: &TriggerDef,
) -> Option<TriggerKind> {
    match (&on.topic, &on.schedule) {
        (Some(_), Some(_)) => {
            compiler.error(
                &format!("{path}.schedule"),
                "`on` has both `topic` and `schedule`",
                Some("a route runs on events (`topic`, `type`) or on a timer (`schedule`); split it into two routes".into()),
            );
            None
        }
        (None, None) => {
            compiler.error(
                path,
                "`on` needs `topic` (to run on events) or `schedule` (to run on a timer)",
                None,
            );
            None
        }
        (Some(topic), None) => {
            let topic = match TopicPattern::parse(topic) {
                Ok(topic) => Some(topic),
                Err(error) => {
                    compiler.error(&format!("{path}.topic"), error, None);
                    None
                }
            };
            let types = compile_types(compiler, &format!("{path}.type"), on.event_type.as_ref());
            Some(TriggerKind::Events {
                topic: topic?,
                types: types?,
            })
        }
        (None, Some(schedule)) => {
            if on.event_type.is_some() {
                compiler.error(
                    &format!("{path}.type"),
                    "`type` selects events, and a scheduled route runs on a timer",
                    Some("remove `type`, or use `topic` instead of `schedule`".into()),
                );
            }
            let parsed = Schedule::parse(schedule.as_deref().unwrap_or_default());
            match parsed {
                Ok(schedule) => on
                    .event_type
                    .is_none()
                    .then_some(TriggerKind::Schedule(schedule)),
                Err(error) => {
                    compiler.error(
                        &format!("{path}.schedule"),
                        error.to_string(),
                        Some("write an interval such as `1m` or `every 30s` (1s to 1y), or five cron fields such as `*/5 * * * *` (minute hour day-of-month month day-of-week, in UTC)".into()),
                    );
                    None
                }
            }
        }
    }
}

fn compile_types(
    compiler: &mut Compiler<'_>,
    path: &str,
    selector: Option<&TypeSelector>,
) -> Option<TypeFilter> {
    let names: Vec<String> = match selector {
        None => return Some(TypeFilter::Any),
        Some(TypeSelector::One(name)) if name == "*" => return Some(TypeFilter::Any),
        Some(TypeSelector::One(name)) => vec![name.clone()],
        Some(TypeSelector::Many(names)) => names.clone(),
    };
    if names.is_empty() {
        compiler.error(
            path,
            "`type` lists no event types",
            Some("omit `type` or write `*` to accept every type".into()),
        );
        return None;
    }
    let mut ok = true;
    for name in &names {
        if let Err(error) = crate::event::check_event_type(name) {
            compiler.error(path, error.to_string(), None);
            ok = false;
        }
    }
    ok.then_some(TypeFilter::OneOf(names))
}

/// The kinds of `steps` and of the steps nested in their `for_each`.
fn action_kinds(steps: &[crate::action::Step], kinds: &mut Vec<&'static str>) {
    for step in steps {
        kinds.push(step.action.kind());
        if let crate::action::Action::Query(query) = &step.action {
            action_kinds(&query.for_each, kinds);
        }
    }
}
