//! The `crm-router` binary: parses the command line and runs the command (`cli::*`).

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::{Global, SourceArgs};
use crm_router::config::LogFormat;

// mimalloc instead of glibc's malloc. A request's buffers are allocated on one tokio worker and
// often freed on another (work stealing moves tasks), and glibc then locks the allocating
// thread's arena: under `crm-router bench --variant rest-read` those lock waits were a tenth of
// the profile. mimalloc frees across threads without a lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Show what the routes would do with one event (each step's statement, request and emit),
    /// in a transaction that is rolled back, sending no HTTP; exit 1 when a route fails.
    Simulate(cli::simulate::SimulateArgs),
    /// Run route tests (YAML files beside the routes, default ROUTES/tests) on a database
    /// made for the run; exit 1 with what differed when one fails.
    Test {
        /// Test files, or directories of them.
        paths: Vec<PathBuf>,
        #[command(flatten)]
        source: SourceArgs,
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
        command: cli::topics::TopicsCommand,
    },
    /// Manage users of the bundled CRM.
    User {
        #[command(subcommand)]
        command: cli::user::UserCommand,
    },
    /// Inspect, replay and discard dead letters.
    Dlq {
        #[command(subcommand)]
        command: cli::dlq::DlqCommand,
    },
    /// Measure throughput, latency and memory on this machine, each variant on a database of
    /// its own (see BENCHMARKS.md).
    Bench(cli::bench::BenchArgs),
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let global = Global {
        config: cli.config,
        log_format: cli.log_format,
    };
    let result = match cli.command {
        Command::Run(args) => cli::run::run(&global, args).await,
        Command::Check(args) => cli::check::run(&global, args).await,
        Command::Test { paths, source } => cli::test::run(&global, paths, source).await,
        Command::Init { dir, force, bare } => cli::init::run(&dir, force, bare),
        Command::Simulate(args) => cli::simulate::run(&global, args).await,
        Command::Routes(args) => cli::routes::run(&global, args),
        Command::Graph { format, source } => cli::graph::run(&global, format, source),
        Command::Topics { command } => cli::topics::run(&global, command).await,
        Command::User { command } => cli::user::run(&global, command).await,
        Command::Dlq { command } => cli::dlq::run(&global, command).await,
        Command::Bench(args) => cli::bench::run(args).await,
        Command::Import {
            from,
            on_error,
            source,
        } => cli::import::run(&global, &from, on_error, source).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
