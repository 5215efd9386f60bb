//! SQLite's read connections, run on the caller's thread.
//!
//! Through sqlx, every statement is a message to the connection's worker thread and a wake-up
//! back: for the API's reads (the caller's user, then one list page) those four thread
//! switches cost more CPU than SQLite's own work (`crm-router bench --variant rest-read`).
//! [`Readers`] are connections of our own, opened through rusqlite on the same file and the
//! same SQLite library, pooled by deadpool (an async wait when all are taken, no thread), and
//! every statement runs where the task that asked for it runs.
//!
//! That blocks the task's thread for the statement's duration, which is why only reads come
//! here: in WAL mode a reader never waits for the writer, the API's reads are paged and
//! indexed, and a long one costs its own thread what it cost sqlx's worker. The connections
//! are `query_only`, so a write sent here by mistake fails instead of racing the writer.
//!
//! Each connection also remembers the counts of the list pages it served
//! ([`ReadConnection::count`]) for as long as SQLite's `data_version` says that no
//! connection, in this process or another, committed anything since: counting every matching
//! row was a quarter of a list request.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleResult};
use rusqlite::OpenFlags;

use super::inline::{self, into_sqlx};
use super::Param;

/// Read connections a process opens at most: beyond the async threads, more only queue.
const CONNECTIONS: usize = 4;

/// Prepared statements each connection keeps: the API's lists and lookups.
const STATEMENT_CACHE: usize = 64;

/// Counts each connection remembers at most (a list and a viewer's filter each); past it, the
/// connection forgets them all and starts again.
const COUNTS: usize = 64;

/// A pool of read-only SQLite connections that run statements inline.
#[derive(Clone)]
pub struct Readers {
    pool: managed::Pool<Opener>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Readers")
            .field("file", &self.pool.manager().file)
            .finish_non_exhaustive()
    }
}

/// One read connection, back to the pool when dropped.
pub type Reader = managed::Object<Opener>;

/// A read connection and the counts it remembers.
pub struct ReadConnection {
    connection: rusqlite::Connection,
    counts: Vec<Count>,
}

/// A count, and the `data_version` it was read at.
struct Count {
    version: i64,
    sql: String,
    params: Vec<Param<'static>>,
    total: i64,
}

impl ReadConnection {
    /// What `sql` (a `SELECT COUNT(*) …`) counts. A count read before is answered again while
    /// the database has not changed: `data_version` moves whenever another connection commits
    /// a change, and this one, being query-only, makes none, so an unchanged version means the
    /// very same rows. `cacheable` false (a statement whose text varies with its values)
    /// keeps nothing.
    pub fn count(
        &mut self,
        sql: &str,
        params: &[Param<'static>],
        cacheable: bool,
    ) -> Result<i64, sqlx::Error> {
        // Read first: a commit landing between this and the count leaves an entry that is
        // merely older than it looks, and is counted again next time.
        let version: i64 = self
            .connection
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .map_err(into_sqlx)?;
        if let Some(count) = self.counts.iter().find(|count| {
            count.version == version && count.sql == sql && count.params.as_slice() == params
        }) {
            return Ok(count.total);
        }
        let mut total = None;
        inline::for_each_row(&self.connection, sql, params, cacheable, |row| {
            total = Some(row.get::<_, i64>(0).map_err(into_sqlx)?);
            Ok(())
        })?;
        let total = total.ok_or(sqlx::Error::RowNotFound)?;
        if cacheable {
            self.counts.retain(|count| count.version == version);
            if self.counts.len() >= COUNTS {
                self.counts.clear();
            }
            self.counts.push(Count {
                version,
                sql: sql.to_owned(),
                params: params.to_vec(),
                total,
            });
        }
        Ok(total)
    }
}

impl std::fmt::Debug for ReadConnection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ReadConnection")
            .field("counts", &self.counts.len())
            .finish_non_exhaustive()
    }
}

impl Deref for ReadConnection {
    type Target = rusqlite::Connection;
    fn deref(&self) -> &rusqlite::Connection {
        &self.connection
    }
}

impl DerefMut for ReadConnection {
    fn deref_mut(&mut self) -> &mut rusqlite::Connection {
        &mut self.connection
    }
}

impl Readers {
    /// Readers of the SQLite file at `file`; `read_only` opens it without write access at all
    /// (a file that must not be created or changed). Connections open when first needed.
    pub fn new(file: PathBuf, read_only: bool, busy_timeout: Duration) -> Self {
        let opener = Opener {
            file,
            read_only,
            busy_timeout,
        };
        let pool = managed::Pool::builder(opener)
            .max_size(CONNECTIONS)
            .build()
            .expect("a pool without a runtime-bound timeout always builds");
        Self { pool }
    }

    /// The database file, when the store may write to it.
    pub fn writable_file(&self) -> Option<&std::path::Path> {
        let opener = self.pool.manager();
        (!opener.read_only).then_some(opener.file.as_path())
    }

    /// A connection of the pool, waiting for one to be returned when all are taken.
    pub async fn get(&self) -> Result<Reader, sqlx::Error> {
        self.pool.get().await.map_err(|error| match error {
            managed::PoolError::Backend(error) => error,
            managed::PoolError::Closed => sqlx::Error::PoolClosed,
            other => sqlx::Error::Protocol(format!("the SQLite reader pool failed: {other}")),
        })
    }

    /// Closes the pool: connections in use close when they are returned.
    pub fn close(&self) {
        self.pool.close();
    }
}

/// Opens read connections for [`Readers`].
#[derive(Debug)]
pub struct Opener {
    file: PathBuf,
    read_only: bool,
    busy_timeout: Duration,
}

impl Opener {
    fn open(&self) -> Result<ReadConnection, sqlx::Error> {
        let access = if self.read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            // Read-write, so that the WAL index can be set up as sqlx's connections do; the
            // `query_only` below keeps the data itself out of reach.
            OpenFlags::SQLITE_OPEN_READ_WRITE
        };
        // NO_MUTEX: a connection is used by one task at a time, as the pool hands it out.
        let connection = rusqlite::Connection::open_with_flags(
            &self.file,
            access | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(into_sqlx)?;
        connection
            .busy_timeout(self.busy_timeout)
            .map_err(into_sqlx)?;
        // As the writer's: sorting a page in memory, never in a temporary file.
        connection
            .execute_batch("PRAGMA temp_store = MEMORY; PRAGMA query_only = ON;")
            .map_err(into_sqlx)?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(ReadConnection {
            connection,
            counts: Vec::new(),
        })
    }
}

impl managed::Manager for Opener {
    type Type = ReadConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<ReadConnection, sqlx::Error> {
        self.open()
    }

    async fn recycle(
        &self,
        connection: &mut ReadConnection,
        _metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        // A local file's connection does not go stale as a network one does. One left inside a
        // transaction (a savepoint whose rollback failed) would serve a frozen snapshot and
        // hold back checkpoints: it is closed instead.
        if connection.is_autocommit() {
            Ok(())
        } else {
            Err(managed::RecycleError::message(
                "a read connection was returned inside a transaction",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::db::{self, Pool};
    use crate::store::Store;

    async fn store(directory: &tempfile::TempDir) -> Store {
        let store = Store::connect(&directory.path().join("crm.db").display().to_string())
            .await
            .unwrap();
        store.migrate(None).await.unwrap();
        store
    }

    #[tokio::test]
    async fn readers_see_what_the_writer_committed_and_refuse_writes() {
        let directory = tempfile::tempdir().unwrap();
        let store = store(&directory).await;
        assert!(matches!(store.reader(), Pool::SqliteReaders(_)));
        let count = || async {
            db::query("SELECT COUNT(*) FROM settings WHERE name = $1")
                .bind("reader-test")
                .fetch_one_as::<(i64,)>(store.reader())
                .await
                .unwrap()
                .0
        };
        assert_eq!(count().await, 0);
        let mut transaction = store.begin().await.unwrap();
        db::query("INSERT INTO settings (name, value) VALUES ($1, $2)")
            .bind("reader-test")
            .bind("1")
            .execute(&mut transaction)
            .await
            .unwrap();
        // Not yet committed: a reader's snapshot does not have it.
        assert_eq!(count().await, 0);
        transaction.commit().await.unwrap();
        assert_eq!(count().await, 1);

        let refused = db::query("DELETE FROM settings")
            .execute(store.reader())
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("readonly"),
            "a write on a reader must fail as read-only, got: {refused}"
        );
        assert_eq!(count().await, 1, "the refused write changed nothing");

        // A connection held by one task while others read: the pool hands out the rest.
        let mut held = store.reader().acquire().await.unwrap();
        let (one,): (i64,) = db::query("SELECT 1").fetch_one_as(&mut held).await.unwrap();
        assert_eq!((one, count().await), (1, 1));
    }

    #[tokio::test]
    async fn readers_open_the_file_sqlx_opens_for_an_encoded_path() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/my%20crm.db", directory.path().display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate(None).await.unwrap();
        assert!(directory.path().join("my crm.db").exists());
        let (tables,): (i64,) =
            db::query("SELECT COUNT(*) FROM sqlite_master WHERE name = 'event_log'")
                .fetch_one_as(store.reader())
                .await
                .unwrap();
        assert_eq!(
            tables, 1,
            "the readers see the migrated file, not another one"
        );
    }

    #[tokio::test]
    async fn a_read_only_store_opens_its_readers_without_write_access() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("crm.db").display().to_string();
        store(&directory).await.close().await;
        let store = Store::connect_read_only(&path).await.unwrap();
        let (tables,): (i64,) =
            db::query("SELECT COUNT(*) FROM sqlite_master WHERE name = 'event_log'")
                .fetch_one_as(store.reader())
                .await
                .unwrap();
        assert_eq!(tables, 1);
        let missing = directory.path().join("missing.db").display().to_string();
        assert!(Store::connect_read_only(&missing).await.is_err());
        assert!(!directory.path().join("missing.db").exists());
    }

    #[tokio::test]
    async fn a_count_is_remembered_until_anything_commits() {
        let directory = tempfile::tempdir().unwrap();
        let store = store(&directory).await;
        let Pool::SqliteReaders(readers) = store.reader() else {
            panic!("a SQLite file is read through the inline readers");
        };
        let insert = |name: &'static str| {
            let store = store.clone();
            async move {
                let mut transaction = store.begin().await.unwrap();
                db::query("INSERT INTO settings (name, value) VALUES ($1, 'v')")
                    .bind(name)
                    .execute(&mut transaction)
                    .await
                    .unwrap();
                transaction.commit().await.unwrap();
            }
        };
        let sql = "SELECT COUNT(*) FROM settings WHERE name LIKE $1";
        let params = [db::Param::Text("count-%".into())];
        let mut reader = readers.get().await.unwrap();
        assert_eq!(reader.count(sql, &params, true).unwrap(), 0);
        insert("count-1").await;
        // Another connection committed: the remembered 0 is not answered again.
        assert_eq!(reader.count(sql, &params, true).unwrap(), 1);
        assert_eq!(reader.count(sql, &params, true).unwrap(), 1);
        // Other parameters are another count.
        let other = [db::Param::Text("none-%".into())];
        assert_eq!(reader.count(sql, &other, true).unwrap(), 0);
        insert("count-2").await;
        assert_eq!(reader.count(sql, &params, true).unwrap(), 2);
        assert_eq!(reader.count(sql, &params, false).unwrap(), 2);

        // A commit by another process (here: a connection outside this store) counts too.
        let outside = rusqlite::Connection::open(directory.path().join("crm.db")).unwrap();
        outside
            .execute(
                "INSERT INTO settings (name, value) VALUES ('count-3', 'v')",
                [],
            )
            .unwrap();
        assert_eq!(reader.count(sql, &params, true).unwrap(), 3);
    }
}
