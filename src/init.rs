//! `crm-router init DIR`: writes the bundled routes, schemas and a commented config for editing.

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
# migrations: migrations

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

/// Writes `DIR/routes/`, `DIR/schemas/` and `DIR/crm-router.yaml`; returns the files written.
pub fn init(directory: &Path, force: bool) -> Result<Vec<PathBuf>, InitError> {
    let mut written = Vec::new();
    // Check the config first so an existing project is refused before anything is written.
    let config = directory.join("crm-router.yaml");
    if config.exists() && !force {
        return Err(InitError::Exists(config));
    }
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
    write_new(&config, CONFIG_TEMPLATE.as_bytes(), force)?;
    written.push(config);
    Ok(written)
}
