//! `crm-router init DIR`: writes a project to edit. By default that is the CRM's bundled routes
//! and schemas, a commented config and a `migrations/` folder for tables of your own; with
//! `--bare` it is `examples/bare` instead: one table, three routes and their event schemas,
//! with the CRM's REST resources turned off.

use std::fs;
use std::path::{Path, PathBuf};

use include_dir::Dir;
use thiserror::Error;

/// Why `init` stopped.
#[derive(Debug, Error)]
pub enum InitError {
    /// Refusing to overwrite.
    #[error("{0} already exists; pass --force to overwrite")]
    Exists(PathBuf),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// The commented config written by `init`.
pub const CONFIG_TEMPLATE: &str = r#"# crm-router configuration. Every setting is optional.
# Precedence: command-line flags > environment variables > this file > defaults.

# Database: a SQLite file (embedded default) or PostgreSQL. Env: DATABASE_URL.
# database_url: sqlite://crm-router.db

# Route files and event schemas. Env: CRM_ROUTER_ROUTES, CRM_ROUTER_SCHEMAS.
routes: routes
schemas: schemas

# Your own SQL migrations, applied after the built-in ones. Env: CRM_ROUTER_MIGRATIONS.
migrations: migrations

# The CRM's REST resources (/api/auth, /api/customers, ...); false serves the operator
# endpoints only. Env: CRM_ROUTER_CRM_API.
# crm_api: true

# HTTP address. Env: CRM_ROUTER_LISTEN, or PORT (listens on 0.0.0.0:$PORT).
# listen: 127.0.0.1:8080

# text or json
# log_format: text

# Environment variables templates may read as {{ env.NAME }}; no others are visible.
# env_allow: [SLACK_WEBHOOK_URL]

# Consumer name under which positions are stored.
# consumer: crm-router

# Most events per database transaction.
# batch_size: 500

# An event POST /api/events takes that no route reads: accept (counted and warned about) or
# refuse (422 naming the topic it may have meant). Env: CRM_ROUTER_UNROUTED.
# unrouted: accept

# Default retry policy for routes without their own `retry:`.
# retry:
#   attempts: 3
#   backoff: {initial: 200ms, max: 10s, multiplier: 2.0}
#   jitter: true
"#;

fn write_new(path: &Path, contents: &[u8], force: bool) -> Result<(), InitError> {
    if path.exists() && !force {
        return Err(InitError::Exists(path.to_owned()));
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|source| InitError::Write {
            path: parent.to_owned(),
            source,
        })?;
    }
    fs::write(path, contents).map_err(|source| InitError::Write {
        path: path.to_owned(),
        source,
    })
}

fn write_dir(
    dir: &Dir<'_>,
    target: &Path,
    force: bool,
    written: &mut Vec<PathBuf>,
) -> Result<(), InitError> {
    for file in dir.files() {
        let path = target.join(file.path());
        write_new(&path, file.contents(), force)?;
        written.push(path);
    }
    for sub in dir.dirs() {
        write_dir(sub, target, force, written)?;
    }
    Ok(())
}

/// What `migrations/README.md` says in a CRM project, whose own tables are built in.
const MIGRATIONS_README: &str = "\
# Your tables

The CRM's tables are built into crm-router. Tables of your own, for routes of your own, are
created by the SQL files here: `<VERSION>_<DESCRIPTION>.sql`, e.g. `20270101000000_orders.sql`,
applied once each in version order when the daemon or `crm-router check` starts. One folder
serves SQLite and PostgreSQL, so write SQL both accept. Never edit a file that has run; add a
later one. `crm-router init --bare` writes an example.
";

/// Which project `init` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// The CRM: its bundled routes and schemas, with its REST resources.
    Crm,
    /// Your own events only: `examples/bare`.
    Bare,
}

/// Writes the project `template` into `directory`; returns the files written. Nothing is
/// overwritten without `force`, and a directory that already has a `crm-router.yaml` is refused
/// before anything is written.
pub fn init(directory: &Path, template: Template, force: bool) -> Result<Vec<PathBuf>, InitError> {
    let mut written = Vec::new();
    let config = directory.join("crm-router.yaml");
    if config.exists() && !force {
        return Err(InitError::Exists(config));
    }
    match template {
        Template::Crm => {
            write_dir(
                &crate::bundled::ROUTES,
                &directory.join("routes"),
                force,
                &mut written,
            )?;
            write_dir(
                &crate::bundled::SCHEMAS,
                &directory.join("schemas"),
                force,
                &mut written,
            )?;
            let readme = directory.join("migrations").join("README.md");
            write_new(&readme, MIGRATIONS_README.as_bytes(), force)?;
            written.push(readme);
            write_new(&config, CONFIG_TEMPLATE.as_bytes(), force)?;
            written.push(config);
        }
        Template::Bare => {
            write_dir(&crate::bundled::BARE, directory, force, &mut written)?;
            // Editors that read `# yaml-language-server: $schema=` find the route format here.
            let format = crate::bundled::SCHEMAS
                .get_file("route.schema.json")
                .expect("the route format is bundled");
            let path = directory.join("schemas").join("route.schema.json");
            write_new(&path, format.contents(), force)?;
            written.push(path);
        }
    }
    Ok(written)
}
