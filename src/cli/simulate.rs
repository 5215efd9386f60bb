//! `crm-router simulate --event FILE`: what the routes would do with one event, run on the
//! configured database in a transaction that is rolled back, with no HTTP sent.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::Value as Json;

use crm_router::action::{Rendered, StepTrace};
use crm_router::engine::simulate::{self, RouteOutcome, RouteSimulation, Simulation};
use crm_router::route::RouteSet;
use crm_router::store::Store;

use super::{init_tracing_quiet, Global, SourceArgs};

/// `crm-router simulate`'s arguments.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A JSON file (`-` reads stdin) holding the event as `POST /api/events` takes it, plus
    /// its topic: `{"topic": "...", "eventType": "...", "data": {...}}`, and optionally
    /// `eventId`, `timestamp`, `source`, `key`.
    #[arg(long, value_name = "FILE")]
    event: PathBuf,
    /// The event's topic (wins over `topic` in the file).
    #[arg(long)]
    topic: Option<String>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: SourceArgs,
}

/// Runs the routes for the event and rolls back; exit 1 when the event is refused or a route
/// failed.
pub async fn run(global: &Global, args: SimulateArgs) -> anyhow::Result<ExitCode> {
    init_tracing_quiet();
    let text = read_event(&args.event)?;
    // A malformed event is refused before the database is opened.
    let event = simulate::parse_event(&text, args.topic.as_deref())
        .map_err(|refused| anyhow::anyhow!("the event is refused: {refused}"))?;
    let settings = global.settings(args.source)?;
    // Opened, not migrated: a dry run leaves the schema as it is, migrations included.
    let store = Store::connect(&settings.database_url).await?;
    if store.catalog().await?.columns("event_log").is_none() {
        store.close().await;
        anyhow::bail!(
            "the database at {} has not been prepared: run `crm-router run` on it once (simulate never changes its schema)",
            crm_router::store::redact_url(&settings.database_url)
        );
    }
    // The routes as the daemon would load them, checked against the database.
    let handle = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(RouteSet::empty()));
    crm_router::reload::Reloader::new(
        store.clone(),
        crm_router::reload::LoadSettings::from_settings(&settings),
        handle.clone(),
    )
    .reload()
    .await
    .map_err(|error| anyhow::anyhow!("the routes are invalid:\n{error}"))?;
    let routes = handle.load_full();
    simulate::check_schema(&routes, &event)
        .map_err(|refused| anyhow::anyhow!("the event is refused: {refused}"))?;
    let simulation = simulate::simulate(&store, &routes, &event).await;
    store.close().await;
    let simulation = simulation?;
    let output = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&simulation)?)
    } else {
        render(&simulation)
    };
    print!("{}", hide_environment(&output, &settings.env_allow));
    Ok(if simulation.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn read_event(path: &std::path::Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the event from stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The longest value shown on a line of text; `--json` has them whole.
const SHOWN: usize = 300;

/// A value as compact JSON, cut at [`SHOWN`] characters.
fn shown(value: &Json) -> String {
    let text = value.to_string();
    if text.chars().count() <= SHOWN {
        return text;
    }
    let cut: String = text.chars().take(SHOWN).collect();
    format!("{cut}…")
}

/// `text` with its lines after the first indented under a step's.
fn indented(text: &str) -> String {
    text.replace('\n', "\n        ")
}

/// The text report: the event, one block per route, and the rollback.
fn render(simulation: &Simulation) -> String {
    let event = &simulation.event;
    let mut out = format!(
        "event {} on {} key={} (eventId {})\n",
        event.envelope.event_type, event.topic, event.key, event.envelope.event_id
    );
    if simulation.routes.is_empty() {
        out.push_str(&format!(
            "no route reads {} on topic {}\n",
            event.envelope.event_type, event.topic
        ));
    }
    for route in &simulation.routes {
        render_route(&mut out, route);
    }
    out.push_str("rolled back: nothing was written, no HTTP request was sent\n");
    out
}

fn render_route(out: &mut String, route: &RouteSimulation) {
    out.push_str(&format!("route {} ({})", route.name, route.file));
    match route.when {
        Some(false) => {
            out.push_str(": on.when does not hold, nothing ran\n");
            return;
        }
        Some(true) => out.push_str(", on.when holds\n"),
        None => out.push('\n'),
    }
    for step in &route.steps {
        render_step(out, step);
    }
    match &route.outcome {
        RouteOutcome::Applied | RouteOutcome::Skipped => out.push_str("  applied\n"),
        RouteOutcome::Failed {
            step,
            error,
            retryable,
        } => {
            let then = if *retryable {
                "the daemon would retry the event"
            } else {
                "the daemon would dead-letter it"
            };
            // A step's error is shown at the step.
            let at = match step {
                Some(step) => format!("step {step}"),
                None => format!("on.when: {}", indented(error)),
            };
            out.push_str(&format!(
                "  FAILED at {at}: its effects were undone; {then}\n"
            ));
        }
    }
}

fn render_step(out: &mut String, step: &StepTrace) {
    let head = format!("  {} {}", step.path, step.summary);
    if step.when == Some(false) {
        out.push_str(&format!("{head}: when does not hold, skipped\n"));
        return;
    }
    match &step.rendered {
        None => out.push_str(&format!("{head}\n")),
        Some(Rendered::Statement(statement)) => {
            let params: Vec<String> = statement.params.iter().map(shown).collect();
            out.push_str(&format!(
                "{head}: {}  [{}]\n",
                statement.sql,
                params.join(", ")
            ));
            if let Some(returned) = &statement.returned {
                let rows = match returned {
                    Json::Array(rows) => format!("{} row(s) ", rows.len()),
                    _ => String::new(),
                };
                let kept = match &statement.as_name {
                    Some(name) => format!("steps.{name} = "),
                    None => "returned ".to_owned(),
                };
                out.push_str(&format!("      → {rows}{kept}{}\n", shown(returned)));
            }
        }
        Some(Rendered::Emit(emit)) => {
            let read_by = if emit.read_by.is_empty() {
                "read by no route".to_owned()
            } else {
                format!("read by {}", emit.read_by.join(", "))
            };
            out.push_str(&format!(
                "  {} emit {} {} key={} {} → {read_by}\n",
                step.path,
                emit.topic,
                emit.event_type,
                emit.key,
                shown(&emit.data)
            ));
        }
        Some(Rendered::Http(http)) => {
            let sent = if http.sent { "sent" } else { "not sent" };
            out.push_str(&format!(
                "  {} http {} {}  ({sent})",
                step.path, http.method, http.url
            ));
            if let Some(body) = &http.body {
                out.push_str(&format!("  body {}", shown(body)));
            }
            out.push('\n');
            let headers: Vec<String> = http
                .headers
                .iter()
                .map(|(name, value)| format!("{name}: {}", value.as_str().unwrap_or_default()))
                .collect();
            out.push_str(&format!("      headers {}\n", headers.join(", ")));
            if let Some(name) = &http.as_name {
                out.push_str(&format!(
                    "      → steps.{name} = {}\n",
                    shown(&http.response)
                ));
            }
        }
    }
    if let Some(error) = &step.error {
        out.push_str(&format!("      ✗ {}\n", indented(error)));
    }
}

/// `output` with the value of each allowed environment variable replaced by `<env.NAME>`: a
/// webhook URL or token read from the environment is a secret, and a simulation's output is
/// meant to be pasted into tickets. Values shorter than 4 characters are left (they would
/// hide ordinary text).
fn hide_environment(output: &str, env_allow: &[String]) -> String {
    let mut hidden = output.to_owned();
    let mut values: Vec<(String, &str)> = env_allow
        .iter()
        .filter_map(|name| Some((std::env::var(name).ok()?, name.as_str())))
        .filter(|(value, _)| value.chars().count() >= 4)
        .collect();
    // Longest first, so a value containing another is hidden whole.
    values.sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
    for (value, name) in values {
        for written in [
            value.clone(),
            serde_json::to_string(&value).unwrap_or_default(),
        ] {
            let written = written.trim_matches('"');
            if !written.is_empty() {
                hidden = hidden.replace(written, &format!("<env.{name}>"));
            }
        }
    }
    hidden
}
