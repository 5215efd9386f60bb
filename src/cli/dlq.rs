//! `crm-router dlq list|show|replay|discard`: the dead letters of a database.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crm_router::app::open_store;
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
    /// Run the failed route again with the routes as they are now (oldest first with `--all`).
    Replay(DlqTargets),
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
    use crm_router::engine::replay::{ReplayOutcome, Replayer};
    let (targets, replay) = match command {
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
        DlqCommand::Replay(targets) => (targets, true),
        DlqCommand::Discard(targets) => (targets, false),
    };
    let DlqTargets {
        ids,
        all,
        selection,
        source,
    } = targets;
    let settings = global.settings(source)?;
    let store = open_store(&settings).await?;
    let ids = if all {
        dead_letters::ids(store.reader(), &selection.filter(Some(Status::Pending))).await?
    } else {
        ids
    };
    if replay && matches!(settings.routes, crm_router::route::load::Source::Bundled) {
        eprintln!("warning: no ./routes here and no --routes given: replaying with the routes compiled into the binary; pass --routes DIR (the daemon's) to replay with yours");
    }
    // The routes as they are now, checked against the database, exactly as the daemon loads them.
    let handle: crm_router::engine::RouteSetHandle = std::sync::Arc::new(
        arc_swap::ArcSwap::from_pointee(crm_router::route::RouteSet::empty()),
    );
    crm_router::reload::Reloader::new(
        store.clone(),
        crm_router::reload::LoadSettings::from_settings(&settings),
        handle.clone(),
    )
    .reload()
    .await
    .map_err(|error| anyhow::anyhow!("the routes are invalid:\n{error}"))?;
    let replayer = Replayer::new(store.clone(), handle, std::sync::Arc::default());
    let mut failures = 0;
    for id in &ids {
        let result = if replay {
            replayer.replay(id).await.map(|outcome| match outcome {
                ReplayOutcome::Applied { emitted } => {
                    format!("applied ({emitted} event(s) emitted)")
                }
                ReplayOutcome::FailedAgain { error } => {
                    failures += 1;
                    format!("failed again, a new dead letter holds it: {error}")
                }
                ReplayOutcome::Requeued => "back in the Kafka outbox".to_owned(),
            })
        } else {
            replayer.discard(id).await.map(|()| "discarded".to_owned())
        };
        match result {
            Ok(message) => println!("{id}: {message}"),
            Err(error) => {
                failures += 1;
                println!("{id}: not done: {error}");
            }
        }
    }
    store.close().await;
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
