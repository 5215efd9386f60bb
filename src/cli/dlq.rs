//! `crm-router dlq list|show|replay|discard`: the dead letters of a database.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use std::time::Duration;

use crm_router::action::http_env_reads;
use crm_router::app::open_store;
use crm_router::config::Settings;
use crm_router::engine::replay::{ReplayOutcome, Replayer};
use crm_router::engine::RouteSetHandle;
use crm_router::route::RouteSet;
use crm_router::store::dead_letters::{self, Status};
use crm_router::store::Store;

use super::{init_tracing_quiet, Global, SourceArgs};

/// `crm-router dlq …`.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters, newest failure first.
    List {
        #[command(flatten)]
        selection: DlqSelection,
        /// PENDING, REPLAYED or DISCARDED (default: all).
        #[arg(long, value_parser = parse_status)]
        status: Option<Status>,
        /// At most this many (1-500).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=500))]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// Print one dead letter as JSON.
    Show {
        /// The dead letter's id.
        id: String,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// Run the failed route again with the routes as they are now (oldest first with `--all`):
    /// through the running daemon when one answers at the configured listen address, so its
    /// routes and environment are used; else in this process.
    Replay {
        #[command(flatten)]
        targets: DlqTargets,
        /// Replay in this process even when a daemon answers (with this shell's environment).
        #[arg(long)]
        offline: bool,
    },
    /// Mark dead letters DISCARDED (they are kept for the record).
    Discard(DlqTargets),
}

/// The dead letters a replay or discard acts on.
#[derive(Debug, Args)]
pub struct DlqTargets {
    /// Dead letter ids; or `--all` with filters.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    ids: Vec<String>,
    /// Every pending dead letter the filters select.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    selection: DlqSelection,
    #[command(flatten)]
    source: SourceArgs,
}

/// Which dead letters (every filter narrows the selection).
#[derive(Debug, Args)]
pub struct DlqSelection {
    /// Only this route's.
    #[arg(long)]
    route: Option<String>,
    /// Only this event type's.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Last failed at or after this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    since: Option<String>,
    /// Last failed before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    until: Option<String>,
}

impl DlqSelection {
    fn filter(self, status: Option<Status>) -> dead_letters::Filter {
        dead_letters::Filter {
            route: self.route,
            event_type: self.event_type,
            since: self.since,
            until: self.until,
            status,
        }
    }
}

fn parse_status(text: &str) -> Result<Status, String> {
    Status::parse(text).ok_or_else(|| format!("{text:?} is not PENDING, REPLAYED or DISCARDED"))
}

fn parse_time(text: &str) -> Result<String, String> {
    dead_letters::stored_time(text)
        .ok_or_else(|| format!("{text:?} is not an RFC 3339 time such as 2026-11-29T10:00:00Z"))
}

/// A failed read of the dead letters; a missing table means `run` never prepared the database.
fn dead_letter_read_error(error: sqlx::Error) -> anyhow::Error {
    let missing_table = match &error {
        sqlx::Error::Database(database) => {
            database.code().as_deref() == Some("42P01")
                || database.message().starts_with("no such table")
        }
        _ => false,
    };
    let error = anyhow::Error::new(error);
    if missing_table {
        error.context("cannot read the dead letters (has crm-router run on this database?)")
    } else {
        error
    }
}

/// `dlq list|show|replay|discard`.
/// Runs a `dlq` subcommand.
pub async fn run(global: &Global, command: DlqCommand) -> anyhow::Result<ExitCode> {
    init_tracing_quiet();
    let targets = match command {
        DlqCommand::List {
            selection,
            status,
            limit,
            json,
            source,
        } => {
            // Reading letters changes nothing, not even the schema.
            let store = Store::connect_read_only(&global.settings(source)?.database_url).await?;
            let filter = selection.filter(status);
            let (letters, total) = dead_letters::list(store.reader(), &filter, limit, 0)
                .await
                .map_err(dead_letter_read_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&letters)?);
            } else {
                for letter in &letters {
                    let error: String = letter.error.chars().take(100).collect();
                    println!(
                        "{}  {:<9}  {}  {} {}  route={} action={}  {error}",
                        letter.id,
                        letter.status,
                        letter.last_failed_at,
                        letter.topic,
                        letter.event_type,
                        letter.route.as_deref().unwrap_or("-"),
                        letter.action_index.as_deref().unwrap_or("-"),
                    );
                }
                println!("{} of {total} dead letter(s)", letters.len());
            }
            return Ok(ExitCode::SUCCESS);
        }
        DlqCommand::Show { id, source } => {
            let store = Store::connect_read_only(&global.settings(source)?.database_url).await?;
            let letter = dead_letters::get(store.reader(), &id)
                .await
                .map_err(dead_letter_read_error)?
                .with_context(|| format!("no dead letter {id}"))?;
            println!("{}", serde_json::to_string_pretty(&letter)?);
            return Ok(ExitCode::SUCCESS);
        }
        DlqCommand::Replay { targets, offline } => {
            return replay(global, targets, offline).await;
        }
        DlqCommand::Discard(targets) => targets,
    };
    let settings = global.settings(targets.source)?;
    let store = open_store(&settings).await?;
    let ids = selected_ids(&store, targets.ids, targets.all, targets.selection).await?;
    let replayer = Replayer::new(store.clone(), empty_routes(), std::sync::Arc::default());
    let mut failures = 0;
    for id in &ids {
        match replayer.discard(id).await {
            Ok(()) => println!("{id}: discarded"),
            Err(error) => {
                failures += 1;
                println!("{id}: not done: {error}");
            }
        }
    }
    store.close().await;
    Ok(exit_code(failures))
}

fn exit_code(failures: usize) -> ExitCode {
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn empty_routes() -> RouteSetHandle {
    std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(RouteSet::empty()))
}

/// The ids given, or with `--all` every pending letter the filters select, oldest first.
async fn selected_ids(
    store: &Store,
    ids: Vec<String>,
    all: bool,
    selection: DlqSelection,
) -> anyhow::Result<Vec<String>> {
    if !all {
        return Ok(ids);
    }
    dead_letters::ids(store.reader(), &selection.filter(Some(Status::Pending)))
        .await
        .map_err(dead_letter_read_error)
}

/// `dlq replay`: through the daemon that answers at the configured listen address, else (or
/// with `offline`) here.
async fn replay(global: &Global, targets: DlqTargets, offline: bool) -> anyhow::Result<ExitCode> {
    let settings = global.settings(targets.source)?;
    let store = open_store(&settings).await?;
    let ids = selected_ids(&store, targets.ids, targets.all, targets.selection).await?;
    let failures = if offline {
        replay_here(&settings, &store, &ids).await?
    } else {
        match Daemon::find(&settings).await? {
            Ok(daemon) => daemon.replay(&ids).await?,
            Err(absent) => {
                eprintln!(
                    "{absent}: replaying in this process, with this shell's environment and the routes in {}",
                    settings.routes.describe()
                );
                replay_here(&settings, &store, &ids).await?
            }
        }
    };
    store.close().await;
    Ok(exit_code(failures))
}

/// A running crm-router, reached over its API.
struct Daemon {
    base: String,
    key: String,
    client: reqwest::Client,
}

impl Daemon {
    /// The daemon at the listen address `settings` name (a wildcard address is reached on
    /// loopback): `Ok(Err(why))` when none answers there, `Err` when one does but cannot be
    /// used, since replaying here instead would run its routes in the wrong environment.
    async fn find(settings: &Settings) -> anyhow::Result<Result<Self, String>> {
        let mut address = settings.listen;
        if address.ip().is_unspecified() {
            address.set_ip(match address {
                std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let base = format!("http://{address}");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        let alive = client
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        let answered = match alive {
            Ok(response) => response.json::<serde_json::Value>().await.ok(),
            Err(error) => return Ok(Err(format!("no daemon answers at {base} ({error})"))),
        };
        if answered.as_ref().and_then(|body| body.get("status")) != Some(&"ok".into()) {
            return Ok(Err(format!(
                "what answers at {base} is not a crm-router daemon"
            )));
        }
        let Some(key) = settings.api_key.clone() else {
            anyhow::bail!(
                "a daemon answers at {base}, but CRM_ROUTER_API_KEY is not set here to call it: set it to the daemon's key, or pass --offline to replay in this shell"
            );
        };
        eprintln!("replaying through the daemon at {base}");
        Ok(Ok(Self { base, key, client }))
    }

    /// Asks the daemon to replay each letter; returns how many did not apply.
    async fn replay(&self, ids: &[String]) -> anyhow::Result<usize> {
        let mut failures = 0;
        for id in ids {
            let response = self
                .client
                .post(format!("{}/api/dlq/{id}/replay", self.base))
                .header("x-api-key", &self.key)
                .send()
                .await
                .with_context(|| format!("asking the daemon at {} to replay {id}", self.base))?;
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let text = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
            let message = match (status.as_u16(), text("outcome").as_str()) {
                (200, "applied") => format!("applied ({} event(s) emitted)", body["emitted"]),
                (200, "requeued") => "back in the Kafka outbox".to_owned(),
                (200, _) => {
                    failures += 1;
                    format!(
                        "failed again, a new dead letter holds it: {}",
                        text("error")
                    )
                }
                (404, _) => {
                    failures += 1;
                    format!(
                        "not done: the daemon at {} has no such dead letter (is it on another database?)",
                        self.base
                    )
                }
                (401 | 403, _) => anyhow::bail!(
                    "the daemon at {} refused the key in CRM_ROUTER_API_KEY: {}",
                    self.base,
                    text("message")
                ),
                _ => {
                    failures += 1;
                    format!("not done: {}", text("message"))
                }
            };
            println!("{id}: {message}");
        }
        Ok(failures)
    }
}

/// Replays in this process, with the routes loaded here. A letter whose route has an `http`
/// step reading an `env` variable this shell does not give is refused: the call would fail, or
/// go somewhere the daemon's would not.
async fn replay_here(settings: &Settings, store: &Store, ids: &[String]) -> anyhow::Result<usize> {
    if matches!(settings.routes, crm_router::route::load::Source::Bundled) {
        eprintln!("warning: no ./routes here and no --routes given: replaying with the routes compiled into the binary; pass --routes DIR (the daemon's) to replay with yours");
    }
    // The routes as they are now, checked against the database, exactly as the daemon loads them.
    let handle = empty_routes();
    crm_router::reload::Reloader::new(
        store.clone(),
        crm_router::reload::LoadSettings::from_settings(settings),
        handle.clone(),
    )
    .reload()
    .await
    .map_err(|error| anyhow::anyhow!("the routes are invalid:\n{error}"))?;
    let routes = handle.load_full();
    let replayer = Replayer::new(store.clone(), handle, std::sync::Arc::default());
    let mut failures = 0;
    for id in ids {
        if let Some(refusal) = unset_environment(settings, store, &routes, id).await? {
            failures += 1;
            println!("{id}: not replayed: {refusal}");
            continue;
        }
        match replayer.replay(id).await {
            Ok(ReplayOutcome::Applied { emitted }) => {
                println!("{id}: applied ({emitted} event(s) emitted)")
            }
            Ok(ReplayOutcome::FailedAgain { error }) => {
                failures += 1;
                println!("{id}: failed again, a new dead letter holds it: {error}");
            }
            Ok(ReplayOutcome::Requeued) => println!("{id}: back in the Kafka outbox"),
            Err(error) => {
                failures += 1;
                println!("{id}: not done: {error}");
            }
        }
    }
    Ok(failures)
}

/// Why letter `id` must not be replayed here: its route's `http` step reads an `env` variable
/// this process does not have (or may not read).
async fn unset_environment(
    settings: &Settings,
    store: &Store,
    routes: &RouteSet,
    id: &str,
) -> anyhow::Result<Option<String>> {
    let Some(letter) = dead_letters::get(store.reader(), id)
        .await
        .map_err(dead_letter_read_error)?
    else {
        return Ok(None);
    };
    let Some(route) = letter.route.as_deref().and_then(|name| {
        routes
            .routes
            .iter()
            .find(|route| route.name.as_str() == name)
    }) else {
        return Ok(None);
    };
    let unset = http_env_reads(&route.steps, &routes.templates)
        .into_iter()
        .find(|(_, name)| !settings.env_allow.contains(name) || std::env::var_os(name).is_none());
    Ok(unset.map(|(step, name)| {
        format!(
            "route {}'s http step {step} reads env.{name}, which is not set in this shell; replay through the running daemon (it has its environment), or set {name} here",
            route.name
        )
    }))
}
