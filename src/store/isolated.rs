//! A database made for one run and removed after it: a SQLite file in a temporary directory,
//! or a new database on a PostgreSQL server. `crm-router bench` runs each variant on one, and
//! `crm-router test` runs route tests on one, never on the configured database itself.

use std::path::Path;

use sqlx::Connection;

/// Why the database could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IsolatedError(String);

/// Which kind of database to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A new SQLite file in a temporary directory.
    Sqlite,
    /// A new database on the PostgreSQL server, dropped afterwards.
    Postgres,
}

/// A database made for one run, removed when the run ends.
pub struct IsolatedDatabase {
    /// Its URL.
    pub url: String,
    /// PostgreSQL: the server URL and database name to drop.
    drop_on: Option<(String, String)>,
}

impl IsolatedDatabase {
    /// Creates an empty database: a file in `dir`, or a database on the server at
    /// `postgres_url`.
    /// The PostgreSQL database is named `{prefix}_{random}`.
    pub async fn create(
        backend: Backend,
        dir: &Path,
        postgres_url: &str,
        prefix: &str,
    ) -> Result<Self, IsolatedError> {
        match backend {
            Backend::Sqlite => Ok(Self {
                url: format!("sqlite://{}", dir.join(format!("{prefix}.db")).display()),
                drop_on: None,
            }),
            Backend::Postgres => {
                let name = format!(
                    "{prefix}_{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..12]
                );
                let cannot_connect = |error: &dyn std::fmt::Display| {
                    IsolatedError(format!(
                        "cannot connect to {}: {error}",
                        crate::store::redact_url(postgres_url)
                    ))
                };
                let connect_options = crate::store::postgres_tls::connect_options(postgres_url)
                    .map_err(|error| cannot_connect(&error))?;
                let mut server = sqlx::PgConnection::connect_with(&connect_options)
                    .await
                    .map_err(|error| cannot_connect(&error))?;
                sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut server)
                    .await
                    .map_err(|error| {
                        IsolatedError(format!("cannot create database {name}: {error}"))
                    })?;
                let _ = server.close().await;
                let mut url = url::Url::parse(postgres_url).map_err(|error| {
                    IsolatedError(format!(
                        "{:?} is not a URL: {error}",
                        crate::store::redact_url(postgres_url)
                    ))
                })?;
                url.set_path(&name);
                Ok(Self {
                    url: url.to_string(),
                    drop_on: Some((postgres_url.to_owned(), name)),
                })
            }
        }
    }

    /// Drops a PostgreSQL database (a SQLite file goes with its temporary directory).
    pub async fn remove(self) {
        let Some((server, name)) = self.drop_on else {
            return;
        };
        let connected = match crate::store::postgres_tls::connect_options(&server) {
            Ok(connect_options) => sqlx::PgConnection::connect_with(&connect_options)
                .await
                .map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match connected {
            Ok(mut connection) => {
                if let Err(error) =
                    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut connection)
                        .await
                {
                    tracing::warn!(%error, database = %name, "cannot drop the isolated database");
                }
                let _ = connection.close().await;
            }
            Err(error) => {
                tracing::warn!(%error, database = %name, "cannot drop the isolated database")
            }
        }
    }
}
