//! The `crm-router` binary: parses the command line, sets up logging, runs a command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crm_router::app::{open_store, Application};
use crm_router::auth::Role;
use crm_router::bench::{self, BenchOptions, Outcome, Variant};
use crm_router::config::{LogFormat, Overrides, Settings, SettingsSource};

// mimalloc instead of glibc's malloc. A request's buffers are allocated on one tokio worker and
// often freed on another (work stealing moves tasks), and glibc then locks the allocating
// thread's arena: under `crm-router bench --variant rest-read` those lock waits were a tenth of
// the profile. mimalloc frees across threads without a lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use crm_router::crm::users;
use crm_router::route::load::{self, LoadOptions};
use crm_router::route::trigger::TriggerKind;
use crm_router::store::dead_letters::{self, Status};
use crm_router::store::Store;
use crm_router::template::TemplateLimits;

/// A declarative event router for the CRM: YAML routes turn events into rows, HTTP calls and
/// new events.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Config file (default: ./crm-router.yaml when it exists).
    #[arg(long, global = true, env = "CRM_ROUTER_CONFIG")]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, env = "CRM_ROUTER_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon.
    Run(SourceArgs),
    /// Validate routes, templates, schemas, tables and columns; exit 1 on any problem.
    Check(SourceArgs),
    /// Write a project into DIR to edit: the CRM's routes and schemas with a commented config,
    /// or with --bare an example of your own events and tables.
    Init {
        /// Target directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
        /// Without the CRM: an example table, routes and schemas of your own, and the CRM's
        /// REST resources turned off.
        #[arg(long)]
        bare: bool,
    },
    /// List the routes that would be loaded (trigger → actions).
    Routes(SourceArgs),
    /// Draw how the routes connect: events and schedules → routes → the events they emit.
    Graph {
        /// `mermaid` (a flowchart GitHub renders) or `dot` (Graphviz).
        #[arg(long, value_enum, default_value = "mermaid")]
        format: crm_router::route::graph::GraphFormat,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// Manage Kafka topics.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Manage users of the bundled CRM.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Inspect, replay and discard dead letters.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Measure throughput, latency and memory on this machine, each variant on a database of
    /// its own (see BENCHMARKS.md).
    Bench(BenchArgs),
    /// Import the original CRM's users, customers, meetings, tasks, approval requests,
    /// notifications and audit log from its PostgreSQL database or a JSON lines file, without
    /// events.
    /// Idempotent; exits 1 when a row was refused.
    Import {
        /// `postgres://…` of the original CRM's database, or a file of JSON lines
        /// (`{"table": "users", "row": {...}}`). From the environment, a password in the URL
        /// stays out of the process list.
        #[arg(env = "CRM_ROUTER_IMPORT_FROM", hide_env_values = true)]
        from: String,
        /// What a bad row does: `skip` reports it and goes on, `stop` imports nothing after it.
        #[arg(long, value_enum, default_value = "skip")]
        on_error: crm_router::import::OnError,
        #[command(flatten)]
        source: SourceArgs,
    },
}

/// `crm-router bench`.
#[derive(Debug, Args)]
struct BenchArgs {
    /// Variants to run (repeatable; default: all, skipping those whose PostgreSQL or Kafka is
    /// unreachable).
    #[arg(long = "variant", value_enum)]
    variants: Vec<Variant>,
    /// Events (cascades) in each variant's throughput phase.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=5_000_000))]
    events: u64,
    /// Cascades in the latency phase (0: no latency phase).
    #[arg(long, default_value_t = 5_000)]
    latency_events: usize,
    /// Their rate, per second.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    latency_rate: u32,
    /// How long the REST read load runs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    rest_duration: std::time::Duration,
    /// Concurrent REST clients.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    rest_connections: u64,
    /// PostgreSQL server on which the bench creates (and drops) a database per variant.
    #[arg(
        long,
        env = "CRM_ROUTER_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// Kafka bootstrap servers for the Kafka variants.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    kafka_brokers: String,
    /// The daemon's batch_size.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    batch_size: u64,
    /// After the variants, run the old CRM services' re-implementation from this directory
    /// (`DIR/run.sh N`, e.g. `../shared/seed-services`) and print how many times their
    /// cascades per second kafka-postgres-cascade did.
    #[arg(long, value_name = "DIR")]
    seed_services: Option<PathBuf>,
    /// `USER_CREATED` events the old services get (they manage about 150-180 a second).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    seed_events: u64,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Internal: run one variant and print its outcome as JSON.
    #[arg(long, hide = true)]
    child: Option<String>,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
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
struct DlqTargets {
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
struct DlqSelection {
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

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create the configured topics (default: the five CRM topics, 3 partitions, 7 days).
    Create(SourceArgs),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user, reading the password from stdin (bootstraps the first ADMIN).
    Create {
        /// Email address.
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// USER, SALES, COMPLIANCE, MANAGER or ADMIN.
        #[arg(long, default_value = "USER")]
        role: Role,
        #[command(flatten)]
        source: SourceArgs,
    },
}

#[derive(Debug, Args)]
struct SourceArgs {
    /// `sqlite://FILE` (default sqlite://crm-router.db) or `postgres://...`.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Route directory (default ./routes when it exists, else the bundled routes).
    #[arg(long, env = "CRM_ROUTER_ROUTES")]
    routes: Option<PathBuf>,
    /// Event schema directory (default ./schemas when it exists, else the bundled schemas).
    #[arg(long, env = "CRM_ROUTER_SCHEMAS")]
    schemas: Option<PathBuf>,
    /// Your own SQL migrations (default ./migrations when it exists).
    #[arg(long, env = "CRM_ROUTER_MIGRATIONS")]
    migrations: Option<PathBuf>,
    /// HTTP listen address (default 127.0.0.1:8080; with PORT set, 0.0.0.0:$PORT).
    #[arg(long, env = "CRM_ROUTER_LISTEN")]
    listen: Option<String>,
}

fn init_tracing(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Colours only on a terminal: piped into a file, journald or a log shipper, escape codes
    // would be noise in every line.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(stderr_is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn settings(
    cli_config: Option<&Path>,
    log_format: Option<LogFormat>,
    args: SourceArgs,
) -> anyhow::Result<Settings> {
    Ok(settings_source(cli_config, log_format, args)?.resolve()?)
}

/// Flags, environment and the config file (`--config`, or `./crm-router.yaml` when it exists).
fn settings_source(
    cli_config: Option<&Path>,
    log_format: Option<LogFormat>,
    args: SourceArgs,
) -> anyhow::Result<SettingsSource> {
    let default_config = Path::new("crm-router.yaml");
    let file = match cli_config {
        Some(path) => Some(path.to_owned()),
        None if default_config.is_file() => Some(default_config.to_owned()),
        None => None,
    };
    let port = match std::env::var("PORT") {
        Ok(port) => Some(
            port.parse::<u16>()
                .with_context(|| format!("PORT={port:?} is not a port number"))?,
        ),
        Err(_) => None,
    };
    let overrides = Overrides {
        database_url: args.database_url,
        routes: args.routes,
        schemas: args.schemas,
        migrations: args.migrations,
        listen: args.listen,
        port,
        log_format,
        api_key: std::env::var("CRM_ROUTER_API_KEY").ok(),
        jwt_secret: std::env::var("JWT_SECRET").ok(),
        cors_origins: std::env::var("CRM_ROUTER_CORS_ORIGINS").ok(),
        unrouted: std::env::var("CRM_ROUTER_UNROUTED").ok(),
        crm_api: std::env::var("CRM_ROUTER_CRM_API").ok(),
        kafka_environment: std::env::vars()
            .filter(|(name, _)| name.starts_with("KAFKA_"))
            .collect(),
    };
    Ok(SettingsSource::new(overrides, file))
}

async fn shutdown_signal(token: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down: finishing the batch in flight");
    token.cancel();
}

async fn run(settings: Settings, source: SettingsSource) -> anyhow::Result<()> {
    let application = Application::build(settings, Some(source)).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(shutdown_signal(shutdown.clone()));
    application.run(shutdown).await?;
    Ok(())
}

async fn check(settings: Settings) -> anyhow::Result<ExitCode> {
    let report = crm_router::check::check(&settings).await?;
    if report.diagnostics.is_empty() {
        println!(
            "ok: {} routes, {} schemas (routes: {}, schemas: {})",
            report.routes,
            report.schemas,
            settings.routes.describe(),
            settings.schemas.describe()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for diagnostic in &report.diagnostics {
        println!("{diagnostic}");
    }
    eprintln!("{} problem(s) found", report.diagnostics.len());
    Ok(ExitCode::FAILURE)
}

/// The routes `settings` name, loaded without a database; `None` after printing why not.
fn loaded_routes(settings: &Settings) -> Option<crm_router::route::RouteSet> {
    let loaded = load::load(&LoadOptions {
        routes: &settings.routes,
        schemas: &settings.schemas,
        catalog: None,
        env: settings.template_env(),
        default_retry: settings.retry,
        limits: TemplateLimits::default(),
    });
    match loaded {
        Ok(set) => Some(set),
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                println!("{diagnostic}");
            }
            None
        }
    }
}

fn draw_routes(
    settings: Settings,
    format: crm_router::route::graph::GraphFormat,
) -> anyhow::Result<ExitCode> {
    let Some(set) = loaded_routes(&settings) else {
        return Ok(ExitCode::FAILURE);
    };
    print!("{}", crm_router::route::graph::render(&set, format));
    Ok(ExitCode::SUCCESS)
}

fn list_routes(settings: Settings) -> anyhow::Result<ExitCode> {
    let Some(set) = loaded_routes(&settings) else {
        return Ok(ExitCode::FAILURE);
    };
    println!("# routes from {}", set.origin);
    for route in &set.routes {
        let actions: Vec<String> = route
            .steps
            .iter()
            .map(|step| step.action.summary())
            .collect();
        let trigger = match &route.trigger.kind {
            TriggerKind::Events { topic, types } => {
                format!("{} [{}]", topic.as_str(), types.names().join(", "))
            }
            TriggerKind::Schedule(schedule) => format!("schedule {:?}", schedule.as_str()),
        };
        println!("{}: {trigger} → {}", route.name, actions.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

async fn create_topics(settings: Settings) -> anyhow::Result<ExitCode> {
    use crm_router::kafka::topics::{self, TopicOutcome};
    let Some(kafka) = settings.kafka else {
        anyhow::bail!("Kafka is not enabled: set KAFKA_ENABLED=true and KAFKA_BROKERS");
    };
    let results = topics::create(&kafka).await.map_err(|error| {
        let reason = error.to_string();
        anyhow::anyhow!(
            "❌ Failed to connect to Kafka: {reason} ({})",
            crm_router::kafka::connect::hint(&reason)
        )
    })?;
    let mut failed = false;
    for (topic, outcome) in results {
        match outcome {
            TopicOutcome::Created => println!("created {topic}"),
            TopicOutcome::Exists => println!("exists  {topic}"),
            TopicOutcome::Failed(reason) => {
                failed = true;
                println!("FAILED  {topic}: {reason}");
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The password: prompted without echo on a terminal, else the first line of stdin.
fn read_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Password: ").context("cannot read the password");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

async fn create_user(
    settings: Settings,
    email: String,
    name: String,
    role: Role,
) -> anyhow::Result<ExitCode> {
    let password = read_password()?;
    let store = open_store(&settings).await?;
    let (user, _published) = users::register(
        &store,
        users::Registration {
            email,
            password,
            name,
            role,
            manager_id: None,
        },
        None,
        None,
    )
    .await?;
    store.close().await;
    // A running daemon on this database picks USER_CREATED up from the log within a second.
    println!("created {} {} ({})", user.role, user.email, user.id);
    Ok(ExitCode::SUCCESS)
}

async fn import(
    settings: Settings,
    from: &str,
    on_error: crm_router::import::OnError,
) -> anyhow::Result<ExitCode> {
    use crm_router::import::{self, original::OriginalTable, source::Source};
    let source = Source::parse(from);
    let store = open_store(&settings).await?;
    // Drawn on a terminal only; piped, it stays silent and the summary says it all.
    let progress = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} rows ({per_sec}, {eta} left)",
        )
        .context("the progress bar's template")?,
    );
    let outcome = import::import(&store, &source, on_error, &progress).await;
    progress.finish_and_clear();
    store.close().await;
    let summary = outcome.with_context(|| format!("importing from {}", source.display()))?;
    println!("imported from {}:", source.display());
    for table in OriginalTable::ALL {
        if let Some(counts) = summary.counts.get(&table) {
            print!(
                "  {:<18} {} imported, {} already here, {} refused",
                table.name(),
                counts.imported,
                counts.present,
                counts.refused
            );
            if counts.merged > 0 {
                print!(
                    ", {} taken to be the user here with the same email",
                    counts.merged
                );
            }
            println!();
        }
    }
    const SHOWN: usize = 50;
    for refusal in summary.refusals.iter().take(SHOWN) {
        println!("refused: {refusal}");
    }
    if summary.refusals.len() > SHOWN {
        println!("… and {} more refused rows", summary.refusals.len() - SHOWN);
    }
    if summary.stopped {
        println!(
            "stopped at the first refused row (--on-error stop): nothing after it was imported"
        );
    }
    Ok(if summary.refusals.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
async fn dead_letter_command(
    config: Option<&Path>,
    log_format: Option<LogFormat>,
    command: DlqCommand,
) -> anyhow::Result<ExitCode> {
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
            let store =
                Store::connect_read_only(&settings(config, log_format, source)?.database_url)
                    .await?;
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
            let store =
                Store::connect_read_only(&settings(config, log_format, source)?.database_url)
                    .await?;
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
    let settings = settings(config, log_format, source)?;
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.config.clone();
    let result = match cli.command {
        Command::Run(args) => {
            let resolved = settings_source(config.as_deref(), cli.log_format, args)
                .and_then(|source| Ok((source.resolve()?, source)));
            match resolved {
                Ok((settings, source)) => {
                    init_tracing(settings.log_format);
                    run(settings, source).await.map(|()| ExitCode::SUCCESS)
                }
                Err(error) => Err(error),
            }
        }
        Command::Check(args) => {
            init_tracing_quiet();
            match settings(config.as_deref(), cli.log_format, args) {
                Ok(settings) => check(settings).await,
                Err(error) => Err(error),
            }
        }
        Command::Routes(args) => {
            settings(config.as_deref(), cli.log_format, args).and_then(list_routes)
        }
        Command::Graph { format, source } => settings(config.as_deref(), cli.log_format, source)
            .and_then(|settings| draw_routes(settings, format)),
        Command::Topics {
            command: TopicsCommand::Create(source),
        } => {
            init_tracing_quiet();
            match settings(config.as_deref(), cli.log_format, source) {
                Ok(settings) => create_topics(settings).await,
                Err(error) => Err(error),
            }
        }
        Command::User {
            command:
                UserCommand::Create {
                    email,
                    name,
                    role,
                    source,
                },
        } => {
            init_tracing_quiet();
            match settings(config.as_deref(), cli.log_format, source) {
                Ok(settings) => create_user(settings, email, name, role).await,
                Err(error) => Err(error),
            }
        }
        Command::Import {
            from,
            on_error,
            source,
        } => {
            init_tracing_quiet();
            match settings(config.as_deref(), cli.log_format, source) {
                Ok(settings) => import(settings, &from, on_error).await,
                Err(error) => Err(error),
            }
        }
        Command::Dlq { command } => {
            init_tracing_quiet();
            dead_letter_command(config.as_deref(), cli.log_format, command).await
        }
        Command::Bench(args) => {
            init_tracing_quiet();
            run_bench(args).await
        }
        Command::Init { dir, force, bare } => {
            let template = if bare {
                crm_router::init::Template::Bare
            } else {
                crm_router::init::Template::Crm
            };
            crm_router::init::init(&dir, template, force)
                .map(|written| {
                    for path in written {
                        println!("wrote {}", path.display());
                    }
                    println!(
                        "next: cd {} && crm-router check && crm-router run",
                        dir.display()
                    );
                    if !bare {
                        println!("(crm-router init --bare starts a project without the CRM)");
                    }
                    ExitCode::SUCCESS
                })
                .map_err(anyhow::Error::from)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `check` prints its own report; only warnings from libraries should reach stderr.
/// `bench`: the variants in child processes, or (`--child`) one variant here.
async fn run_bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(request) = args.child {
        let request: bench::ChildRequest =
            serde_json::from_str(&request).context("--child takes the bench's own request")?;
        let outcome = bench::run_variant(request.variant, &request.options).await;
        println!("{}", serde_json::to_string(&outcome)?);
        return Ok(match outcome {
            Outcome::Measured(_) => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        });
    }
    let options = BenchOptions {
        events: args.events as usize,
        latency_events: args.latency_events,
        latency_rate: args.latency_rate,
        rest_duration: args.rest_duration,
        rest_connections: args.rest_connections as usize,
        postgres_url: args.postgres_url,
        kafka_brokers: args.kafka_brokers,
        batch_size: args.batch_size as usize,
    };
    let explicit = !args.variants.is_empty();
    let variants = if explicit {
        args.variants
    } else {
        Variant::ALL.to_vec()
    };
    let outcomes = bench::run(&variants, &options, explicit).await;
    let mut side_by_side = None;
    let mut side_by_side_failed = false;
    if let Some(directory) = &args.seed_services {
        let compared = bench::seed::run_seed_services(directory, args.seed_events as usize)
            .await
            .map_err(|error| error.to_string())
            .and_then(|seed| bench::seed::compare(seed, &outcomes));
        match compared {
            Ok(compared) => side_by_side = Some(compared),
            Err(error) => {
                eprintln!("bench: side by side: {error}");
                side_by_side_failed = true;
            }
        }
    }
    let mut table = bench::report::render(&outcomes);
    if let Some(compared) = &side_by_side {
        table.push('\n');
        table.push_str(&bench::seed::render(compared));
    }
    if args.json {
        // The table too, for the person watching; stdout stays pure JSON.
        eprintln!("{table}");
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "machine": bench::report::machine(),
                "options": options,
                "results": outcomes,
                "side_by_side": side_by_side,
            }))?
        );
    } else {
        println!("{table}");
    }
    let failed = side_by_side_failed
        || outcomes
            .iter()
            .any(|outcome| matches!(outcome, Outcome::Failed { .. }));
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn init_tracing_quiet() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,sqlx=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(stderr_is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn stderr_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}
