//! The database: connection pools, migrations, the schema catalog, the event log, dead
//! letters, the scheduler's last runs and the daemon's settings.
//!
//! Statements run on the native driver of each database through [`db`], which binds and
//! decodes for SQLite (the embedded default) and PostgreSQL alike; the few differences of SQL
//! text live in [`Dialect`]. The daemon's own SQL is written here, and only from checked identifiers ([`crate::route::Ident`]) and `$n`
//! placeholders; the CRM's tables have their fixed statements in [`crate::crm`].

pub mod appender;
pub mod catalog;
pub mod checkpoint;
pub mod column_type;
pub mod db;
pub mod dead_letters;
pub mod exclusive;
pub mod isolated;
pub mod log;
mod migrate;
pub mod postgres_tls;
pub mod schedule_runs;
pub mod settings;
pub mod sql;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Executor as _;
use thiserror::Error;

pub use column_type::ColumnType;
pub use db::{Conn, Pool, Tx};

pub use catalog::Catalog;

/// Failures talking to the database, with what we were doing.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The URL names a database we do not support.
    #[error("unsupported DATABASE_URL scheme in {0:?}: use sqlite://FILE or postgres://...")]
    UnsupportedUrl(String),
    /// Could not connect.
    // The driver's error is part of the message, not a `source`: `main` prints the chain, and
    // would print it twice.
    #[error("cannot open database {url}: {error}{}", postgres_tls::hint(.error))]
    Connect {
        /// The URL with any password removed.
        url: String,
        /// The driver's error.
        error: sqlx::Error,
    },
    /// The `postgres://` URL is unusable as given (its TLS settings, say).
    #[error("cannot use database {url}: {problem}")]
    PostgresUrl {
        /// The URL with any password removed.
        url: String,
        /// What is wrong with it (in the message, not a `source`, as with `Connect`).
        problem: postgres_tls::PostgresUrlError,
    },
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A user migration is unusable.
    #[error("{0}")]
    UserMigration(String),
    /// Another consumer moved the position this batch started from.
    #[error("consumer {consumer:?} moved from position {expected} in another process; is a second daemon running on this database?")]
    PositionMoved {
        /// Consumer name.
        consumer: String,
        /// The position the batch started from.
        expected: i64,
    },
    /// The lock file beside a SQLite database cannot be opened or locked.
    #[error("cannot lock {path}: {source}")]
    LockFile {
        /// The lock file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Any other query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
}

/// Which SQL dialect the store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (embedded default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Whether a [`Store`] may change its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

/// The database handle shared by the engine, the API and the reload loop.
#[derive(Clone)]
pub struct Store {
    writer: Pool,
    reader: Pool,
    dialect: Dialect,
    /// The normalised URL, credentials included (for the exclusive locks' own sessions).
    // Shared, not copied: the API clones the store with its state for every request.
    url: Arc<str>,
    /// On PostgreSQL, the options every connection is opened with, TLS included: the pool's
    /// and the exclusive locks' own sessions alike.
    postgres_options: Option<Arc<PgConnectOptions>>,
    display_url: Arc<str>,
}

// By hand, so the password in `url` never reaches a log line.
impl std::fmt::Debug for Store {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Store")
            .field("dialect", &self.dialect)
            .field("url", &self.display_url)
            .finish_non_exhaustive()
    }
}

/// The dialect of a `DATABASE_URL` as [`Store::connect`] reads it (a plain path is SQLite).
pub fn dialect_of(url: &str) -> Result<Dialect, StoreError> {
    normalise_url(url).map(|(_, dialect)| dialect)
}

/// Normalises what a user may pass as `DATABASE_URL`: a plain path means a SQLite file.
fn normalise_url(url: &str) -> Result<(String, Dialect), StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((url.to_owned(), Dialect::Postgres));
    }
    let path_or_url = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if url.contains("://") {
        return Err(StoreError::UnsupportedUrl(redact_url(url)));
    } else {
        url
    };
    let mut normalised = format!("sqlite://{path_or_url}");
    if !path_or_url.contains("mode=") {
        normalised.push(if path_or_url.contains('?') { '&' } else { '?' });
        normalised.push_str("mode=rwc");
    }
    Ok((normalised, Dialect::Sqlite))
}

/// The URL with its password replaced by `***`, for logs and errors.
///
/// Every way a secret can ride in a connection string is covered: the password of the URL's
/// userinfo, a `password=` (or `sslpassword=`) query parameter, and the same keys in libpq's
/// `key=value` keyword form.
pub fn redact_url(url: &str) -> String {
    const HIDDEN: &str = "***";
    let is_secret =
        |key: &str| key.eq_ignore_ascii_case("password") || key.eq_ignore_ascii_case("sslpassword");
    if url.contains("://") {
        let Ok(mut parsed) = url::Url::parse(url) else {
            // Unparseable: show the scheme only rather than risk a secret.
            return url
                .split("://")
                .next()
                .map_or_else(String::new, |scheme| format!("{scheme}://{HIDDEN}"));
        };
        if parsed.password().is_some() {
            let _ = parsed.set_password(Some(HIDDEN));
        }
        if parsed.query().is_some() {
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(key, value)| {
                    let value = if is_secret(&key) {
                        HIDDEN.to_owned()
                    } else {
                        value.into_owned()
                    };
                    (key.into_owned(), value)
                })
                .collect();
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return parsed.to_string();
    }
    url.split(' ')
        .map(|word| match word.split_once('=') {
            Some((key, _)) if is_secret(key.trim()) => format!("{key}={HIDDEN}"),
            _ => word.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Store {
    /// Opens the database named by `url` (`sqlite://FILE`, a plain path, or `postgres://...`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(url, Access::ReadWrite).await
    }

    /// Opens an existing database only to read it: a SQLite file is neither created nor
    /// switched to WAL (for `dlq list|show`, which must change nothing).
    pub async fn connect_read_only(url: &str) -> Result<Self, StoreError> {
        Self::open(url, Access::ReadOnly).await
    }

    async fn open(url: &str, access: Access) -> Result<Self, StoreError> {
        let (url, dialect) = normalise_url(url)?;
        let display_url = redact_url(&url);
        let connect_error = |error| StoreError::Connect {
            url: display_url.clone(),
            error,
        };
        let store = match dialect {
            Dialect::Sqlite => {
                let options = SqliteConnectOptions::from_str(&url).map_err(connect_error)?;
                let options = match access {
                    Access::ReadOnly => options.read_only(true).create_if_missing(false),
                    // WAL is switched on by `migrate`, in turn with other processes: switching
                    // while connecting, several processes on a new file failed to open it
                    // with "database is locked".
                    Access::ReadWrite => options,
                };
                let options = options
                    // FULL: an acknowledged write survives power loss; batching keeps this to
                    // one fsync per batch, not per event.
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true)
                    // Every statement of a multi-statement transaction that can fail half-way
                    // (an insert into a table with a unique index) keeps the pages it changes in
                    // a statement journal, a temporary file by default: one write(2) per page
                    // was a fifth of the CPU time of a batch. In memory, it holds at most the
                    // pages of one statement.
                    .pragma("temp_store", "MEMORY")
                    // The daemon checkpoints on a thread of its own (store::checkpoint); the
                    // writer does only when that falls far behind.
                    .pragma(
                        "wal_autocheckpoint",
                        checkpoint::WRITER_AUTOCHECKPOINT.to_string(),
                    );
                // One writer connection: SQLite allows one writer anyway, and serialising writes
                // in-process avoids SQLITE_BUSY and keeps the log's sequence in commit order.
                let writer = sqlite_pool(1)
                    .connect_with(options.clone())
                    .await
                    .map_err(connect_error)?;
                // The reads run inline on connections of their own (db::Readers); an
                // in-memory database exists only inside sqlx's connections, so it keeps
                // sqlx's.
                let reader = match exclusive::sqlite_file(&url) {
                    // The file as sqlx opens it (percent-decoded), not as the URL spells it.
                    Some(_) => Pool::SqliteReaders(db::Readers::new(
                        options.get_filename().to_owned(),
                        access == Access::ReadOnly,
                        SQLITE_BUSY_TIMEOUT,
                    )),
                    None => Pool::Sqlite(
                        sqlite_pool(4)
                            .connect_with(options)
                            .await
                            .map_err(connect_error)?,
                    ),
                };
                Self {
                    writer: Pool::Sqlite(writer),
                    reader,
                    dialect,
                    url: url.as_str().into(),
                    postgres_options: None,
                    display_url: display_url.into(),
                }
            }
            Dialect::Postgres => {
                let options = postgres_tls::connect_options(&url).map_err(|problem| {
                    StoreError::PostgresUrl {
                        url: display_url.clone(),
                        problem,
                    }
                })?;
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|connection, _meta| {
                        Box::pin(async move {
                            // After a network partition the server would keep this session,
                            // its open transaction and its locks (the log's append lock among
                            // them) for two hours by default; keepalives end it in about 20 s.
                            connection
                                .execute("SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 2")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options.clone())
                    .await
                    .map_err(connect_error)?;
                Self {
                    writer: Pool::Postgres(pool.clone()),
                    reader: Pool::Postgres(pool),
                    dialect,
                    url: url.as_str().into(),
                    postgres_options: Some(Arc::new(options)),
                    display_url: display_url.into(),
                }
            }
        };
        Ok(store)
    }

    /// Starts checkpointing the WAL of a SQLite file this store writes, off the writer's
    /// commits (see [`checkpoint`]); `None` for PostgreSQL, memory and read-only stores.
    pub fn checkpointer(&self) -> Option<std::io::Result<checkpoint::Checkpointer>> {
        match &self.reader {
            Pool::SqliteReaders(readers) => readers
                .writable_file()
                .map(|file| checkpoint::Checkpointer::start(file.to_owned())),
            _ => None,
        }
    }

    /// Applies the built-in migrations, then the user's from `user_migrations` (if given).
    pub async fn migrate(&self, user_migrations: Option<&Path>) -> Result<(), StoreError> {
        // Processes starting together on a new SQLite file take turns; the first creates the
        // tables and the others find them applied.
        let _turn = self.wait_for_file_lock(exclusive::Job::Migrate).await?;
        let mut connection = self.writer.acquire().await?;
        if self.dialect == Dialect::Sqlite {
            // Readers then never block the writer; the mode stays with the file.
            connection
                .execute_batch("PRAGMA journal_mode = WAL")
                .await?;
        }
        migrate::run(&mut connection, self.dialect, user_migrations).await
    }

    /// Tables and columns as they would be after the migrations, without changing the
    /// database: the migrations run inside a transaction that is rolled back (PostgreSQL's
    /// schema changes are transactional, and so are SQLite's). For `check`.
    pub async fn catalog_after_migrations(
        &self,
        user_migrations: Option<&Path>,
    ) -> Result<Catalog, StoreError> {
        let mut transaction = self.writer.begin_with("BEGIN").await?;
        migrate::run(&mut transaction, self.dialect, user_migrations).await?;
        let catalog = catalog::read(&mut transaction, self.dialect).await?;
        transaction.rollback().await?;
        Ok(catalog)
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx<'static>, StoreError> {
        let statement = match self.dialect {
            // IMMEDIATE takes the write lock up front, so a read-then-write transaction cannot
            // fail half-way with SQLITE_BUSY when another process touches the file.
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        };
        Ok(self.writer.begin_with(statement).await?)
    }

    /// The pool for reads that need no transaction.
    pub fn reader(&self) -> &Pool {
        &self.reader
    }

    /// The SQL dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The SQLite file the store is on (`None` on PostgreSQL and for an in-memory database).
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        match self.dialect {
            Dialect::Sqlite => exclusive::sqlite_file(&self.url),
            Dialect::Postgres => None,
        }
    }

    /// The URL with credentials removed.
    pub fn display_url(&self) -> &str {
        &self.display_url
    }

    /// Tables and columns as they are now.
    pub async fn catalog(&self) -> Result<Catalog, StoreError> {
        let mut connection = self.reader.acquire().await?;
        catalog::read(&mut connection, self.dialect).await
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        db::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    /// Closes the pools, waiting for connections to be returned.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// How long a SQLite statement waits for a lock another connection holds.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

fn sqlite_pool(connections: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalised_and_redacted() {
        assert_eq!(
            normalise_url("crm-router.db").unwrap(),
            (
                "sqlite://crm-router.db?mode=rwc".to_owned(),
                Dialect::Sqlite
            )
        );
        assert_eq!(
            normalise_url("sqlite:///tmp/x.db?mode=ro").unwrap().0,
            "sqlite:///tmp/x.db?mode=ro"
        );
        assert_eq!(
            normalise_url("postgres://u:p@h/db").unwrap().1,
            Dialect::Postgres
        );
        assert!(matches!(
            normalise_url("mysql://h/db"),
            Err(StoreError::UnsupportedUrl(_))
        ));
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&password=S&PassWord=T"),
            "postgres://u@h/db?sslmode=require&password=***&PassWord=***"
        );
        assert_eq!(
            redact_url("host=h user=u password=S dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
        assert_eq!(redact_url("sqlite://crm.db"), "sqlite://crm.db");
    }
}
