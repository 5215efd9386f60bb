//! Action kinds: what a route does for an event. One module per kind; adding a kind touches
//! that module and the [`Action`] enum.
//!
//! Actions run inside the caller's database transaction (a savepoint per route), so their
//! database effects and emitted events commit or roll back together with the consumer position.

pub mod bulk;
mod emit;
mod filter;
pub mod fold;
mod http;
mod insert;
mod query;
mod trace;
mod update;
mod upsert;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use minijinja::Value;
use thiserror::Error;

use crate::engine::retry::RetryPolicy;
use crate::event::Event;
use crate::route::compile::{ColumnValue, Compiler};
use crate::route::model::{ActionDef, EmitDef, HttpDef, InsertDef, UpdateDef, UpsertDef};
use crate::route::reads::StepShape;
use crate::route::RouteName;
use crate::schema::SchemaRegistry;
use crate::store::catalog::Column;
use crate::store::db::{self, Conn, Param};
use crate::store::sql::typed_param;
use crate::template::{Condition, RenderError, TemplateEnvironment, TemplateValue};

pub use emit::{Emit, EMITTED_FIELDS, EMIT_SOURCE};
pub use http::{client as http_client, Http};
pub use insert::Insert;
pub use query::Query;
pub use trace::{
    EmitTrace, HttpMode, HttpTrace, Rendered, Responder, StatementTrace, StepTrace, Trace,
};
pub use update::Update;
pub use upsert::Upsert;

/// A compiled action.
#[derive(Debug, Clone)]
pub enum Action {
    /// `insert:`
    Insert(Insert),
    /// `upsert:`
    Upsert(Upsert),
    /// `update:`
    Update(Update),
    /// `query:`
    Query(Query),
    /// `emit:`
    Emit(Emit),
    /// `http:`
    Http(Http),
}

impl Action {
    /// The kind as written in route files.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Insert(_) => "insert",
            Self::Upsert(_) => "upsert",
            Self::Update(_) => "update",
            Self::Query(_) => "query",
            Self::Emit(_) => "emit",
            Self::Http(_) => "http",
        }
    }

    /// A one-line summary (`insert customers`, `emit customer.events CUSTOMER_CREATED`).
    pub fn summary(&self) -> String {
        match self {
            Self::Insert(insert) => format!("insert {}", insert.table),
            Self::Upsert(upsert) => format!("upsert {}", upsert.table),
            Self::Update(update) => format!("update {}", update.table),
            Self::Query(query) => format!("query {}", query.table),
            Self::Emit(emit) => format!("emit {} {}", emit.topic, emit.event_type),
            Self::Http(http) => format!("http {}", http.method),
        }
    }
}

/// An action with its position in the route and its condition.
#[derive(Debug, Clone)]
pub struct Step {
    /// Position in the route: `2`, or `1.for_each.0` for nested actions.
    pub path: String,
    /// Run only when truthy.
    pub when: Option<Condition>,
    /// The action's own retry policy, used instead of the route's when it fails.
    pub retry: Option<RetryPolicy>,
    /// What to do.
    pub action: Action,
}

impl Step {
    /// Compiles one action definition found at `path` in its file.
    pub fn compile(
        compiler: &mut Compiler<'_>,
        path: &str,
        step_path: String,
        definition: &ActionDef,
    ) -> Option<Self> {
        let kind = match definition {
            ActionDef::Insert(_) => "insert",
            ActionDef::Upsert(_) => "upsert",
            ActionDef::Update(_) => "update",
            ActionDef::Query(_) => "query",
            ActionDef::Emit(_) => "emit",
            ActionDef::Http(_) => "http",
        };
        // The condition first: what it reads guards what the action reads (a step that runs
        // only `when: data.note is defined` may read `data.note`).
        let when = definition
            .when()
            .map(|expression| compiler.condition(&format!("{path}.{kind}.when"), expression));
        compiler.push_guards(when.as_ref().and_then(Option::as_ref));
        let action = match definition {
            ActionDef::Insert(def) => {
                insert::compile(compiler, &format!("{path}.insert"), def).map(Action::Insert)
            }
            ActionDef::Upsert(def) => {
                upsert::compile(compiler, &format!("{path}.upsert"), def).map(Action::Upsert)
            }
            ActionDef::Update(def) => {
                update::compile(compiler, &format!("{path}.update"), def).map(Action::Update)
            }
            ActionDef::Query(def) => {
                query::compile(compiler, &format!("{path}.query"), &step_path, def)
                    .map(Action::Query)
            }
            ActionDef::Emit(def) => {
                emit::compile(compiler, &format!("{path}.emit"), def).map(Action::Emit)
            }
            ActionDef::Http(def) => {
                http::compile(compiler, &format!("{path}.http"), def).map(Action::Http)
            }
        };
        compiler.pop_guards();
        match definition {
            ActionDef::Insert(InsertDef {
                as_name: Some(name),
                table,
                ..
            })
            | ActionDef::Upsert(UpsertDef {
                as_name: Some(name),
                table,
                ..
            }) => {
                let shape = StepShape::Row(compiler.described(table));
                compiler.bind_step(name, shape);
            }
            ActionDef::Update(UpdateDef {
                as_name: Some(name),
                ..
            }) => {
                compiler.bind_step(name, StepShape::Rows("an update"));
            }
            ActionDef::Emit(EmitDef {
                as_name: Some(name),
                ..
            }) => {
                compiler.bind_step(name, StepShape::Fields(EMITTED_FIELDS));
            }
            ActionDef::Http(HttpDef {
                as_name: Some(name),
                ..
            }) => {
                compiler.bind_step(name, StepShape::Fields(&["status", "body"]));
            }
            // A query binds its rows itself, before its for_each.
            _ => {}
        }
        let when = match when {
            Some(condition) => Some(condition?),
            None => None,
        };
        let retry = match definition.retry() {
            Some(def) => Some(compiler.action_retry(&format!("{path}.{kind}.retry"), def)?),
            None => None,
        };
        Some(Self {
            path: step_path,
            when,
            retry,
            action: action?,
        })
    }
}

/// Why an action failed.
#[derive(Debug, Error)]
pub enum ActionError {
    /// A template could not be rendered (undefined variable, type error...).
    #[error("template error: {0}")]
    Render(#[from] RenderError),
    /// A rendered value is not usable (empty key, wrong shape...).
    #[error("{0}")]
    InvalidValue(String),
    /// A value does not fit its column's type.
    #[error("{0}")]
    Refused(#[from] crate::store::sql::ValueRefused),
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An emitted event failed its schema.
    #[error("emitted {event_type} on {topic} fails its schema: {errors}")]
    Schema {
        /// Topic.
        topic: String,
        /// Event type.
        event_type: String,
        /// Validation errors joined with `; `.
        errors: String,
    },
    /// An HTTP call failed.
    #[error("http {method} {url}: {message}")]
    Http {
        /// Method.
        method: String,
        /// URL without query string.
        url: String,
        /// What happened.
        message: String,
        /// Whether trying again may help (5xx, 429, timeouts, connection errors).
        retryable: bool,
        /// How long the server asked us to wait (`Retry-After` on a 429 or 503).
        retry_after: Option<std::time::Duration>,
    },
}

impl ActionError {
    /// Whether the same attempt may succeed later. Template and value errors are
    /// deterministic; lost connections, busy databases and 5xx responses are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Render(_) | Self::InvalidValue(_) | Self::Refused(_) | Self::Schema { .. } => {
                false
            }
            Self::Http { retryable, .. } => *retryable,
            Self::Database(error) => database_error_is_transient(error),
        }
    }

    /// The wait the failed call's server asked for, if any (`Retry-After`).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

fn database_error_is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => {
            let code = database.code().unwrap_or_default();
            // SQLite BUSY/LOCKED; PostgreSQL serialization failure, deadlock, connection
            // exceptions (08xxx), admin shutdown / cannot connect now (57P0x).
            matches!(code.as_ref(), "5" | "6" | "517" | "262" | "40001" | "40P01")
                || code.starts_with("08")
                || code.starts_with("57P0")
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_) => true,
        _ => false,
    }
}

/// What templates can see while a route runs.
#[derive(Debug, Clone)]
pub struct Scope {
    event: Value,
    data: Value,
    env: Value,
    steps: BTreeMap<String, Value>,
    row: Option<Value>,
    /// Row indices of the enclosing `for_each` loops, outermost first.
    iterations: Vec<usize>,
}

impl Scope {
    /// The scope at the start of a route: the event, its data and the allowed environment.
    ///
    /// The event's data is converted once and shared by `data` and `event.data`; cloning a
    /// scope shares them too, so the routes of one event start from one conversion.
    pub fn new(event: &Event, env: Value) -> Self {
        let envelope = &event.envelope;
        let data = Value::from_serialize(&envelope.data);
        let event_value: Value = [
            ("topic", Value::from(event.topic.as_str())),
            ("key", Value::from(event.key.as_str())),
            ("eventId", Value::from(envelope.event_id.as_str())),
            ("eventType", Value::from(envelope.event_type.as_str())),
            ("timestamp", Value::from(envelope.timestamp.as_str())),
            ("source", Value::from(envelope.source.as_str())),
            ("data", data.clone()),
        ]
        .into_iter()
        .collect();
        Self {
            event: event_value,
            data,
            env,
            steps: BTreeMap::new(),
            row: None,
            iterations: Vec::new(),
        }
    }

    /// The template context: `event`, `data`, `steps`, `env` and (in `for_each`) `row`.
    pub fn context(&self) -> Value {
        let mut context = BTreeMap::new();
        context.insert("event", self.event.clone());
        context.insert("data", self.data.clone());
        context.insert("env", self.env.clone());
        context.insert("steps", Value::from(self.steps.clone()));
        if let Some(row) = &self.row {
            context.insert("row", row.clone());
        }
        if !self.iterations.is_empty() {
            context.insert(
                crate::template::ITERATIONS_VARIABLE,
                Value::from(self.iterations.clone()),
            );
        }
        Value::from(context)
    }

    /// Where `step_path` runs in this iteration: `1.for_each.0@3` for row 3 of the loop. Idempotency
    /// keys and dead letters use it, so each row's HTTP call has its own key.
    pub fn step_path(&self, step_path: &str) -> String {
        let mut path = step_path.to_owned();
        for (n, row) in self.iterations.iter().enumerate() {
            path.push(if n == 0 { '@' } else { ',' });
            path.push_str(&row.to_string());
        }
        path
    }

    /// Records an action's result under `steps.<name>`.
    pub fn set_step(&mut self, name: &str, value: &serde_json::Value) {
        self.steps
            .insert(name.to_owned(), Value::from_serialize(value));
    }
}

/// Renders each value and converts it for its column's type.
fn typed_params(
    values: &[ColumnValue],
    templates: &TemplateEnvironment,
    context: &TemplateValue,
) -> Result<Vec<Param<'static>>, ActionError> {
    values
        .iter()
        .map(|value| {
            let rendered = templates.render(&value.value, context)?;
            typed_param(&value.column, &value.column_type, rendered)
                .map_err(|refused| ActionError::Refused(refused.at(&value.at)))
        })
        .collect()
}

/// Runs an insert's or upsert's `statement` and keeps the row it returns as `steps.<as_name>`
/// (`null` when it returns none). Without `as:` nothing reads the row, and the statement was
/// built to return none.
async fn run_keeping_row(
    run: &mut Run<'_, '_>,
    statement: db::Query<'_>,
    as_name: Option<&str>,
    table_columns: &[Column],
    scope: &mut Scope,
) -> Result<(), ActionError> {
    let Some(name) = as_name else {
        statement.execute(&mut *run.connection).await?;
        return Ok(());
    };
    let value = match statement.fetch_optional(&mut *run.connection).await? {
        Some(row) => serde_json::Value::Object(row.to_json(Some(table_columns))?),
        None => serde_json::Value::Null,
    };
    if let Some(trace) = run.trace.as_deref_mut() {
        trace.returned(value.clone());
    }
    scope.set_step(name, &value);
    Ok(())
}

/// Records a statement about to run, when tracing.
fn trace_statement(run: &mut Run<'_, '_>, sql: &str, params: &[Param<'_>], as_name: Option<&str>) {
    if let Some(trace) = run.trace.as_deref_mut() {
        trace.rendered(Rendered::Statement(StatementTrace {
            sql: sql.to_owned(),
            params: params.iter().map(Param::to_json).collect(),
            returned: None,
            as_name: as_name.map(str::to_owned),
        }));
    }
}

/// Everything an action needs while it runs.
pub struct Run<'a, 'c> {
    /// The transaction (savepoint) the route runs in.
    pub connection: &'a mut Conn<'c>,
    /// Compiled templates of the route set.
    pub templates: &'a TemplateEnvironment,
    /// Event schemas, to check emitted events.
    pub schemas: &'a SchemaRegistry,
    /// What `http` steps do: send with the shared client, or (in a simulation) nothing.
    pub http: HttpMode<'a>,
    /// The event being handled.
    pub event: &'a Event,
    /// The route running.
    pub route: &'a RouteName,
    /// Its metric series.
    pub metrics: &'a crate::telemetry::RouteMetrics,
    /// Events emitted so far. The caller appends them to the event log before it commits
    /// (one multi-row insert for the whole transaction) and logs them after.
    pub emitted: &'a mut Vec<Event>,
    /// Where foldable increments are summed, in a batch's first pass; `None` runs every
    /// statement at once.
    pub folds: Option<&'a mut fold::Folds>,
    /// Where a simulation records what each step rendered; `None` records nothing, and then
    /// no step builds a record.
    pub trace: Option<&'a mut Trace>,
}

/// Which action failed and why.
#[derive(Debug, Error)]
#[error("action {path} ({kind}) failed: {error}")]
pub struct StepFailure {
    /// The failing step's path.
    pub path: String,
    /// Its kind.
    pub kind: &'static str,
    /// The error.
    pub error: ActionError,
    /// The failing action's own retry policy, if it has one.
    pub retry: Option<RetryPolicy>,
}

/// Whether any of `steps` (or the steps nested in their `for_each`) is an `http` action.
pub fn calls_http(steps: &[Step]) -> bool {
    steps.iter().any(|step| match &step.action {
        Action::Http(_) => true,
        Action::Query(query) => calls_http(&query.for_each),
        _ => false,
    })
}

/// The `env.NAME` variables the `http` steps among `steps` (nested ones included) read, as
/// (step path, NAME), in step order.
pub fn http_env_reads(steps: &[Step], templates: &TemplateEnvironment) -> Vec<(String, String)> {
    let mut reads = Vec::new();
    for step in steps {
        match &step.action {
            Action::Http(http) => {
                let mut names = std::collections::BTreeSet::new();
                for template in http.templates() {
                    for variable in templates.variables(template) {
                        if let Some(name) = variable.strip_prefix("env.") {
                            let name = name.split('.').next().unwrap_or(name);
                            names.insert(name.to_owned());
                        }
                    }
                }
                reads.extend(names.into_iter().map(|name| (step.path.clone(), name)));
            }
            Action::Query(query) => reads.extend(http_env_reads(&query.for_each, templates)),
            _ => {}
        }
    }
    reads
}

/// Runs `steps` in order; the first failure stops the route.
pub fn run_steps<'r, 'a: 'r, 'c: 'r>(
    run: &'r mut Run<'a, 'c>,
    steps: &'r [Step],
    scope: &'r mut Scope,
) -> Pin<Box<dyn Future<Output = Result<(), StepFailure>> + Send + 'r>> {
    Box::pin(async move {
        for step in steps {
            run_step(run, step, scope).await?;
        }
        Ok(())
    })
}

/// Runs one step (when its `when:` holds), with the steps nested in its `for_each`.
pub async fn run_step(
    run: &mut Run<'_, '_>,
    step: &Step,
    scope: &mut Scope,
) -> Result<(), StepFailure> {
    let traced = run
        .trace
        .as_deref_mut()
        .map(|trace| trace.begin(scope.step_path(&step.path), &step.action));
    let result = execute_step(run, step, scope).await;
    if let (Err(failure), Some(index), Some(trace)) = (&result, traced, run.trace.as_deref_mut()) {
        let traced = trace.step(index);
        // A failure nested in this step's `for_each` is recorded at its own step.
        if failure.path == traced.path {
            traced.error = Some(failure.error.to_string());
        }
    }
    result
}

/// [`run_step`] but for the step's record, which it only completes with its `when:`.
async fn execute_step(
    run: &mut Run<'_, '_>,
    step: &Step,
    scope: &mut Scope,
) -> Result<(), StepFailure> {
    // The path is built only when needed (a failure or an HTTP call), not per step.
    let fail = |scope: &Scope, error: ActionError| StepFailure {
        path: scope.step_path(&step.path),
        kind: step.action.kind(),
        error,
        retry: step.retry,
    };
    if let Some(condition) = &step.when {
        let context = scope.context();
        let held = run
            .templates
            .test(condition, &context)
            .map_err(|e| fail(scope, e.into()))?;
        if let Some(trace) = run.trace.as_deref_mut() {
            trace.held(held);
        }
        if !held {
            return Ok(());
        }
    }
    let started = std::time::Instant::now();
    let result = match &step.action {
        Action::Insert(action) => action.execute(run, scope).await,
        Action::Upsert(action) => action.execute(run, scope).await,
        Action::Update(action) => action.execute(run, scope).await,
        Action::Query(action) => match action.execute(run, scope).await {
            Err(error) => Err(error),
            Ok(rows) => {
                // Nested failures keep their own path (`1.for_each.0`).
                let outer_row = scope.row.take();
                for (index, row) in rows.iter().enumerate() {
                    scope.row = Some(Value::from_serialize(row));
                    scope.iterations.push(index);
                    let nested = run_steps(run, &action.for_each, scope).await;
                    scope.iterations.pop();
                    nested?;
                }
                scope.row = outer_row;
                Ok(())
            }
        },
        Action::Emit(action) => action.execute(run, scope).await,
        Action::Http(action) => {
            let path = scope.step_path(&step.path);
            action.execute(run, scope, &path).await
        }
    };
    run.metrics
        .action_took(step.action.kind(), started.elapsed());
    result.map_err(|error| fail(scope, error))
}
