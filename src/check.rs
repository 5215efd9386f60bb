//! `crm-router check`: everything `run` would load, validated without touching live data.
//!
//! Tables, columns and their types are checked against exactly what `run` would have after its
//! migrations, without changing any database: for SQLite the built-in and user migrations are
//! applied to a scratch database in a temporary directory; for PostgreSQL they run on the
//! configured database inside a transaction that is rolled back after its catalog is read.

use crate::config::Settings;
use crate::route::load;
use crate::route::Diagnostic;
use crate::store::{Dialect, Store, StoreError};

/// What `check` found.
#[derive(Debug)]
pub struct CheckReport {
    /// Problems, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// Routes loaded when there were no problems.
    pub routes: usize,
    /// Schemas loaded when there were no problems.
    pub schemas: usize,
}

/// Runs the check.
pub async fn check(settings: &Settings) -> Result<CheckReport, StoreError> {
    let scratch = tempfile::tempdir().map_err(|error| {
        StoreError::UserMigration(format!("cannot create a scratch directory: {error}"))
    })?;
    let is_postgres = crate::store::dialect_of(&settings.database_url)? == Dialect::Postgres;
    let url = if is_postgres {
        settings.database_url.clone()
    } else {
        format!("sqlite://{}", scratch.path().join("check.db").display())
    };
    let store = Store::connect(&url).await?;
    let catalog = store
        .catalog_after_migrations(settings.migrations.as_deref())
        .await;
    store.close().await;
    let catalog = catalog?;
    let loaded = load::load(&settings.load_options(Some(&catalog)));
    Ok(match loaded {
        Ok(set) => CheckReport {
            diagnostics: Vec::new(),
            routes: set.routes.len(),
            schemas: set.schemas.len(),
        },
        Err(diagnostics) => CheckReport {
            diagnostics,
            routes: 0,
            schemas: 0,
        },
    })
}
