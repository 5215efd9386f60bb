//! The `crm-router` commands, one module each. `main.rs` parses the command line and calls the
//! command's `run`; what several commands share (the settings flags, logging, loading the
//! routes without a database) lives here.

pub mod bench;
pub mod check;
pub mod dlq;
pub mod graph;
pub mod import;
pub mod init;
pub mod routes;
pub mod run;
pub mod simulate;
pub mod test;
pub mod topics;
pub mod user;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use tracing_subscriber::EnvFilter;

use crm_router::config::{LogFormat, Overrides, Settings, SettingsSource};
use crm_router::route::load;

/// The flags every command takes (`--config`, `--log-format`).
#[derive(Debug, Clone)]
pub struct Global {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
}

/// The settings flags of the commands that open the database or load routes.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// `sqlite://FILE` (default sqlite://crm-router.db) or `postgres://...`.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Route directory (default ./routes when it exists, else the bundled routes).
    #[arg(long, env = "CRM_ROUTER_ROUTES")]
    pub routes: Option<PathBuf>,
    /// Event schema directory (default ./schemas when it exists, else the bundled schemas).
    #[arg(long, env = "CRM_ROUTER_SCHEMAS")]
    pub schemas: Option<PathBuf>,
    /// Your own SQL migrations (default ./migrations when it exists).
    #[arg(long, env = "CRM_ROUTER_MIGRATIONS")]
    pub migrations: Option<PathBuf>,
    /// HTTP listen address (default 127.0.0.1:8080; with PORT set, 0.0.0.0:$PORT).
    #[arg(long, env = "CRM_ROUTER_LISTEN")]
    pub listen: Option<String>,
}

impl Global {
    /// The settings for `args`: flags > environment > config file > defaults.
    pub fn settings(&self, args: SourceArgs) -> anyhow::Result<Settings> {
        Ok(self.settings_source(args)?.resolve()?)
    }

    /// Flags, environment and the config file (`--config`, or `./crm-router.yaml` when it
    /// exists), to resolve now and, for `run`, again at each reload.
    pub fn settings_source(&self, args: SourceArgs) -> anyhow::Result<SettingsSource> {
        let default_config = Path::new("crm-router.yaml");
        let file = match self.config.as_deref() {
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
            log_format: self.log_format,
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
}

/// Logging for the daemon: `info` unless `RUST_LOG` says otherwise.
pub fn init_tracing(format: LogFormat) {
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

/// Logging for the other commands: they print their own report, so only warnings from
/// libraries reach stderr.
pub fn init_tracing_quiet() {
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

/// The routes `settings` name, loaded without a database; `None` after printing why not.
pub fn loaded_routes(settings: &Settings) -> Option<crm_router::route::RouteSet> {
    let loaded = load::load(&settings.load_options(None));
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
