//! The two switches a [`super::Run`] has besides its connection: what `http` steps do with the
//! request they render ([`HttpMode`]), and where the steps record what they rendered
//! ([`Trace`], for `crm-router simulate`). The daemon runs with `HttpMode::Send` and no trace,
//! and then nothing here is built.

use serde::Serialize;
use serde_json::Value as Json;

/// What an `http` step does with the request it rendered; each variant decides only what
/// happens after the request is rendered.
#[derive(Debug, Clone, Copy)]
pub enum HttpMode<'a> {
    /// Send it with this client: the daemon, the scheduler and replays.
    Send(&'a reqwest::Client),
    /// Send nothing: the request is only rendered (and traced), and `steps.<as>` holds null.
    DryRun,
    /// Send nothing: `crm-router test` answers it, and the answer is judged as a server's.
    Respond(&'a dyn Responder),
}

/// Answers `http` steps in place of their servers (`crm-router test`'s mocked responses).
pub trait Responder: Sync + std::fmt::Debug {
    /// The status and JSON body answering `method url`, or why there is no answer (the
    /// step then fails with it).
    fn respond(&self, method: &str, url: &str) -> Result<(u16, serde_json::Value), String>;
}

/// What the steps of one route rendered, in the order they ran: a `for_each` step's rows
/// follow it, each with its path (`1.for_each.0@2`).
#[derive(Debug, Default)]
pub struct Trace {
    steps: Vec<StepTrace>,
}

impl Trace {
    /// The steps recorded.
    pub fn into_steps(self) -> Vec<StepTrace> {
        self.steps
    }

    /// Starts the record of a step; returns its index.
    pub(super) fn begin(&mut self, path: String, action: &super::Action) -> usize {
        self.steps.push(StepTrace {
            path,
            kind: action.kind(),
            summary: action.summary(),
            when: None,
            rendered: None,
            error: None,
        });
        self.steps.len() - 1
    }

    /// The step recorded at `index`.
    pub(super) fn step(&mut self, index: usize) -> &mut StepTrace {
        &mut self.steps[index]
    }

    /// Whether the `when:` of the step running now held.
    pub(super) fn held(&mut self, held: bool) {
        if let Some(step) = self.steps.last_mut() {
            step.when = Some(held);
        }
    }

    /// What the step running now rendered. A step renders before any step nested in its
    /// `for_each` begins, so it is the last one recorded.
    pub(super) fn rendered(&mut self, rendered: Rendered) {
        if let Some(step) = self.steps.last_mut() {
            step.rendered = Some(rendered);
        }
    }

    /// What the statement of the step running now returned.
    pub(super) fn returned(&mut self, returned: Json) {
        if let Some(StepTrace {
            rendered: Some(Rendered::Statement(statement)),
            ..
        }) = self.steps.last_mut()
        {
            statement.returned = Some(returned);
        }
    }

    /// What the server answered to the request of the step running now.
    pub(super) fn answered(&mut self, response: Json) {
        if let Some(StepTrace {
            rendered: Some(Rendered::Http(http)),
            ..
        }) = self.steps.last_mut()
        {
            http.response = response;
        }
    }
}

/// One step as it ran.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepTrace {
    /// Where it ran, as dead letters name it: `2`, or `1.for_each.0@3` for row 3 of a loop.
    pub path: String,
    /// `insert`, `upsert`, `update`, `query`, `emit` or `http`.
    pub kind: &'static str,
    /// What it acts on: `insert orders`, `emit invoices INVOICE_DUE`, `http POST`.
    pub summary: String,
    /// Whether its `when:` held; `None` when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<bool>,
    /// What it rendered (`statement`, `emit` or `http`); `None` when it did not run, or failed
    /// before it had rendered everything.
    #[serde(flatten)]
    pub rendered: Option<Rendered>,
    /// Why it failed, as a dead letter would say it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a step rendered.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Rendered {
    /// `insert`, `upsert`, `update` and `query`.
    Statement(StatementTrace),
    /// `emit`.
    Emit(EmitTrace),
    /// `http`.
    Http(HttpTrace),
}

/// A statement as it was run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementTrace {
    /// The SQL text, with `$1`, `$2`, … placeholders.
    pub sql: String,
    /// The bound values, in placeholder order, converted for their columns.
    pub params: Vec<Json>,
    /// What it returned, as `steps.<as>` holds it: a row or null (`insert`, `upsert`), a list
    /// of rows (`update`, `query`). `None` when it returns nothing (an insert or upsert without
    /// `as:`) or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub returned: Option<Json>,
    /// The `as:` name later steps read it by.
    #[serde(rename = "as", skip_serializing_if = "Option::is_none")]
    pub as_name: Option<String>,
}

/// An event an `emit` step rendered (and checked against its schema).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmitTrace {
    /// Topic.
    pub topic: String,
    /// Event type.
    pub event_type: String,
    /// Key.
    pub key: String,
    /// Data.
    pub data: Json,
    /// The routes whose trigger accepts the event, filled in by whoever holds the route set.
    pub read_by: Vec<String>,
}

/// An HTTP request an `http` step rendered.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpTrace {
    /// Method.
    pub method: String,
    /// URL.
    pub url: String,
    /// Headers, `Idempotency-Key` first; credentials (`Authorization`, `Cookie`, API keys)
    /// are shown only by their length.
    pub headers: serde_json::Map<String, Json>,
    /// The JSON body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Json>,
    /// Whether it was sent (or its sending tried); never in a dry run.
    pub sent: bool,
    /// What `steps.<as>` holds: `{status, body}` of the answer, null when it was not sent.
    pub response: Json,
    /// The `as:` name later steps read it by.
    #[serde(rename = "as", skip_serializing_if = "Option::is_none")]
    pub as_name: Option<String>,
}

/// How a header's value is shown: credentials only by their length, so a simulation's
/// output can be pasted into a ticket.
pub(super) fn shown_header(name: &reqwest::header::HeaderName, value: &str) -> Json {
    let name = name.as_str();
    let credential = matches!(name, "authorization" | "proxy-authorization" | "cookie")
        || ["token", "secret", "key", "auth", "signature", "password"]
            .iter()
            .any(|part| name.contains(part));
    if credential {
        Json::String(format!("<hidden: {} characters>", value.chars().count()))
    } else {
        Json::String(value.to_owned())
    }
}
