//! Built-in migrations (embedded in the binary) and the user's own (`--migrations DIR`).
//!
//! Both go through sqlx's migrator and share its `_sqlx_migrations` table; each run ignores the
//! other's versions. A user version equal to a built-in one is refused, since it would be
//! silently skipped.

use std::collections::BTreeSet;
use std::path::Path;

use sqlx::migrate::Migrator;

use super::db::{Conn, Native};
use super::{Dialect, StoreError};

fn builtin(dialect: Dialect) -> Migrator {
    let mut migrator = match dialect {
        Dialect::Sqlite => sqlx::migrate!("migrations/sqlite"),
        Dialect::Postgres => sqlx::migrate!("migrations/postgres"),
    };
    migrator.set_ignore_missing(true);
    migrator
}

/// Versions of the built-in migrations, for collision checks.
fn builtin_versions(dialect: Dialect) -> BTreeSet<i64> {
    builtin(dialect)
        .iter()
        .map(|migration| migration.version)
        .collect()
}

pub(super) async fn run(
    connection: &mut Conn<'_>,
    dialect: Dialect,
    user_migrations: Option<&Path>,
) -> Result<(), StoreError> {
    run_on(&builtin(dialect), connection).await?;
    let Some(directory) = user_migrations else {
        return Ok(());
    };
    let mut user = Migrator::new(directory).await.map_err(|error| {
        StoreError::UserMigration(format!(
            "cannot read migrations in {}: {error}",
            directory.display()
        ))
    })?;
    let reserved = builtin_versions(dialect);
    if let Some(clash) = user
        .iter()
        .find(|migration| reserved.contains(&migration.version))
    {
        return Err(StoreError::UserMigration(format!(
            "migration {}_{} in {} uses version {}, which crm-router's own migrations use; rename it with a later version (e.g. a timestamp prefix)",
            clash.version,
            clash.description,
            directory.display(),
            clash.version
        )));
    }
    user.set_ignore_missing(true);
    run_on(&user, connection).await
}

/// On the caller's connection, so that `check` can run the migrations inside a transaction it
/// rolls back (a migration's own transaction becomes a savepoint there).
async fn run_on(migrator: &Migrator, connection: &mut Conn<'_>) -> Result<(), StoreError> {
    match connection {
        Conn::Sqlite(native) => migrator.run(native_connection(native)).await?,
        Conn::Postgres(native) => migrator.run(native_connection(native)).await?,
        // Migrations run through sqlx's own connection, never on a locked handle.
        Conn::SqliteInline(_) | Conn::SqliteReader(_) => {
            return Err(StoreError::Query(sqlx::Error::Protocol(
                "migrations run only on sqlx's own SQLite connection".into(),
            )))
        }
    }
    Ok(())
}

fn native_connection<'a, DB: sqlx::Database>(
    native: &'a mut Native<'_, DB>,
) -> &'a mut DB::Connection {
    native
}
