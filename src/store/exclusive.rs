//! Locks that let only one process on a database do a job: run the embedded bus, or publish the
//! outbox to Kafka.
//!
//! On PostgreSQL a lock is a session-level advisory lock held by a connection of its own, outside
//! the pools: the server releases it when the process dies or the connection drops. On SQLite it
//! is an advisory file lock on a file beside the database, which the kernel releases when the
//! process dies. Both are released by a SIGKILL, so a crashed instance never blocks its
//! replacement.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;

use std::time::Duration;

use sqlx::postgres::PgConnection;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

use super::{Dialect, Store, StoreError};

/// The job a lock makes exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Consuming the embedded event log. The embedded bus is single-instance: its one consumer
    /// is what makes the log's order the order of effects.
    EmbeddedBus,
    /// Publishing the outbox to Kafka. One publisher keeps each key's events in log order.
    Relay,
    /// Migrating a SQLite file. sqlx's migrator locks PostgreSQL itself but not SQLite, where
    /// two processes starting on a new file would both create the tables.
    Migrate,
}

impl Job {
    /// The advisory lock key on PostgreSQL ("crmrbus" and "crmrrly" in ASCII).
    fn advisory_key(self) -> i64 {
        match self {
            Job::EmbeddedBus => 0x63_72_6d_72_62_75_73,
            Job::Relay => 0x63_72_6d_72_72_6c_79,
            Job::Migrate => 0x63_72_6d_72_6d_69_67,
        }
    }

    /// How the job names itself in a PostgreSQL session's `application_name`.
    fn session_label(self) -> &'static str {
        match self {
            Job::EmbeddedBus => "bus",
            Job::Relay => "relay",
            Job::Migrate => "migrate",
        }
    }

    /// The suffix of the lock file beside a SQLite database.
    fn file_suffix(self) -> &'static str {
        match self {
            Job::EmbeddedBus => "bus.lock",
            Job::Relay => "relay.lock",
            Job::Migrate => "migrate.lock",
        }
    }
}

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct ExclusiveLock {
    job: Job,
    held: Held,
    mode: Mode,
    /// The `application_name` of the PostgreSQL sessions this process takes the lock with,
    /// unique to the process, so that [`ExclusiveLock::keep`] can tell a stranded session of
    /// its own from another process's.
    owner: String,
}

/// Whether other processes may hold the lock too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No other holder.
    Exclusive,
    /// Other shared holders, no exclusive one.
    Shared,
}

/// How long a starting process asks again for a lock it finds held on PostgreSQL. A process
/// that died holding it loses it only once the server's backend reads the closed socket, a
/// moment after the death, so a replacement started at once (by a service manager) would
/// otherwise be refused by a holder that is already dead.
const START_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug)]
enum Held {
    /// The locked file (SQLite); kept open because closing it releases the lock.
    File(#[allow(dead_code)] File),
    /// The session holding the advisory lock (PostgreSQL).
    Session(PgConnection),
    /// An in-memory SQLite database, which no other process can open.
    Private,
}

/// A session name unique to this process and job (see [`ExclusiveLock::keep`]).
fn owner(job: Job) -> String {
    format!(
        "crm-router {} {}",
        job.session_label(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Store {
    /// Takes the lock for `job`, or returns `None` when another process holds it.
    pub async fn try_lock(&self, job: Job) -> Result<Option<ExclusiveLock>, StoreError> {
        self.take(job, Mode::Exclusive, owner(job)).await
    }

    /// Takes `job`'s lock in `mode` for a process starting up, or returns `None` when another
    /// process holds it. On PostgreSQL a held lock is asked for again for a few seconds
    /// ([`START_GRACE`]); a file lock goes with its holder's death at once.
    pub async fn lock_at_start(
        &self,
        job: Job,
        mode: Mode,
    ) -> Result<Option<ExclusiveLock>, StoreError> {
        let deadline = tokio::time::Instant::now() + START_GRACE;
        loop {
            let taken = self.take(job, mode, owner(job)).await?;
            if taken.is_some()
                || self.postgres_options.is_none()
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(taken);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn take(
        &self,
        job: Job,
        mode: Mode,
        owner: String,
    ) -> Result<Option<ExclusiveLock>, StoreError> {
        let held = match self.postgres_options.as_deref() {
            // A session of its own, opened as the pool's connections are (TLS included).
            Some(options) => {
                let mut session = PgConnection::connect_with(options).await?;
                sqlx::query("SELECT set_config('application_name', $1, false)")
                    .bind(&owner)
                    .execute(&mut session)
                    .await?;
                // The server drops a dead holder's session (and the lock) after about 20 s of
                // silence, instead of the operating system's default of two hours.
                sqlx::Executor::execute(
                    &mut session,
                    "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 2",
                )
                .await?;
                let function = match mode {
                    Mode::Exclusive => "SELECT pg_try_advisory_lock($1)",
                    Mode::Shared => "SELECT pg_try_advisory_lock_shared($1)",
                };
                let taken: bool = sqlx::query_scalar(function)
                    .bind(job.advisory_key())
                    .fetch_one(&mut session)
                    .await?;
                if !taken {
                    session.close().await?;
                    return Ok(None);
                }
                Held::Session(session)
            }
            None => match lock_file_path(&self.url, job) {
                None => Held::Private,
                Some(path) => {
                    let file = open_lock_file(&path)?;
                    let taken = match mode {
                        Mode::Exclusive => file.try_lock(),
                        Mode::Shared => file.try_lock_shared(),
                    };
                    match taken {
                        Ok(()) => Held::File(file),
                        Err(TryLockError::WouldBlock) => return Ok(None),
                        Err(TryLockError::Error(source)) => {
                            return Err(StoreError::LockFile { path, source })
                        }
                    }
                }
            },
        };
        Ok(Some(ExclusiveLock {
            job,
            held,
            mode,
            owner,
        }))
    }

    /// Ends the sessions named `owner` that hold `job`'s lock, and waits until the server has
    /// let go of them; returns how many there were. They are this process's own, left behind
    /// when their connection broke in a way the server did not notice (a network partition):
    /// the server keeps such a session, and its lock, until TCP keepalive gives up on it, by
    /// default after more than two hours.
    async fn end_stranded_sessions(&self, job: Job, owner: &str) -> Result<usize, StoreError> {
        let Some(options) = self.postgres_options.as_deref() else {
            return Ok(0);
        };
        const HOLDERS: &str = "FROM pg_locks AS locks \
             JOIN pg_stat_activity AS activity ON activity.pid = locks.pid \
             WHERE locks.locktype = 'advisory' AND locks.granted AND locks.objsubid = 1 \
             AND locks.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND ((locks.classid::bigint << 32) | locks.objid::bigint) = $1 \
             AND activity.application_name = $2";
        let mut session = PgConnection::connect_with(options).await?;
        // In the select list, the call runs only for the rows the WHERE clause kept.
        let ended: Vec<bool> =
            sqlx::query_scalar(&format!("SELECT pg_terminate_backend(locks.pid) {HOLDERS}"))
                .bind(job.advisory_key())
                .bind(owner)
                .fetch_all(&mut session)
                .await?;
        // Termination is asynchronous: wait until the lock is no longer held by them, so that
        // a refusal on the next attempt means another process.
        for _ in 0..50 {
            let left: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {HOLDERS}"))
                .bind(job.advisory_key())
                .bind(owner)
                .fetch_one(&mut session)
                .await?;
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        session.close().await?;
        Ok(ended.into_iter().filter(|&ended| ended).count())
    }
}

impl Store {
    /// Waits for `job`'s lock on a SQLite file, for work every process does but one at a time
    /// (migrations). `None` on PostgreSQL and for in-memory files, which need none here.
    pub async fn wait_for_file_lock(&self, job: Job) -> Result<Option<ExclusiveLock>, StoreError> {
        if self.dialect != Dialect::Sqlite {
            return Ok(None);
        }
        let Some(path) = lock_file_path(&self.url, job) else {
            return Ok(None);
        };
        let waited_for = path.clone();
        let file = tokio::task::spawn_blocking(move || {
            let file = open_lock_file(&path)?;
            file.lock()
                .map_err(|source| StoreError::LockFile { path, source })?;
            Ok::<_, StoreError>(file)
        })
        .await
        .map_err(|error| StoreError::LockFile {
            path: waited_for,
            source: std::io::Error::other(error.to_string()),
        })??;
        Ok(Some(ExclusiveLock {
            job,
            held: Held::File(file),
            mode: Mode::Exclusive,
            owner: String::new(),
        }))
    }
}

/// `crm.db.bus.lock` beside `crm.db`; `None` for an in-memory database.
fn lock_file_path(url: &str, job: Job) -> Option<PathBuf> {
    let database = sqlite_file(url)?;
    // One file reached through a symlink or another relative path is still one database.
    let database = std::fs::canonicalize(&database).unwrap_or(database);
    let mut name = database.into_os_string();
    name.push(".");
    name.push(job.file_suffix());
    Some(PathBuf::from(name))
}

fn open_lock_file(path: &std::path::Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| StoreError::LockFile {
            path: path.to_owned(),
            source,
        })
}

impl ExclusiveLock {
    /// The job this lock is for.
    pub fn job(&self) -> Job {
        self.job
    }

    /// Checks that the lock is still held. A file lock lasts as long as the process; a
    /// PostgreSQL lock lasts as long as its session, so this asks the session to answer. An
    /// error means the lock is lost (the server restarted or the connection broke) and another
    /// process may hold it now.
    pub async fn check(&mut self) -> Result<(), StoreError> {
        match &mut self.held {
            Held::Session(session) => {
                // A session whose peer vanished would otherwise hang here for minutes.
                tokio::time::timeout(CHECK_EVERY, sqlx::query("SELECT 1").execute(&mut *session))
                    .await
                    .map_err(|_| {
                        StoreError::Query(sqlx::Error::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the lock's database session did not answer",
                        )))
                    })??;
                Ok(())
            }
            Held::File(_) | Held::Private => Ok(()),
        }
    }
}

/// How often a held lock is checked, and a lost one retaken.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// A lock was lost and another process holds it now.
#[derive(Debug, thiserror::Error)]
#[error("lost the {job:?} lock on the database and another process took it; stopping so that only one process does the job")]
pub struct LockTaken {
    /// The job.
    pub job: Job,
}

impl ExclusiveLock {
    /// Holds the lock until `shutdown`, checking it every few seconds, then hands it back so
    /// the caller can hold it until its job has finished. A lost session (the database
    /// restarted or the connection broke) is retaken as soon as the database answers; if the
    /// server still keeps the lost session, which holds the lock, it is ended first. If another
    /// process took the lock meanwhile, returns [`LockTaken`] and the caller must stop the job.
    pub async fn keep(
        mut self,
        store: Store,
        shutdown: CancellationToken,
    ) -> Result<ExclusiveLock, LockTaken> {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(CHECK_EVERY) => {}
                _ = shutdown.cancelled() => return Ok(self),
            }
            let Err(error) = self.check().await else {
                continue;
            };
            tracing::warn!(%error, job = ?self.job, "the database session holding an exclusive lock broke; taking the lock again");
            loop {
                match store.take(self.job, self.mode, self.owner.clone()).await {
                    Ok(Some(lock)) => {
                        self = lock;
                        break;
                    }
                    Ok(None) => match store.end_stranded_sessions(self.job, &self.owner).await {
                        Ok(0) => return Err(LockTaken { job: self.job }),
                        Ok(ended) => {
                            tracing::warn!(ended, job = ?self.job, "ended this process's own database session, which still held the exclusive lock after its connection broke");
                        }
                        Err(error) => {
                            tracing::warn!(%error, job = ?self.job, "cannot take the exclusive lock again yet");
                            tokio::select! {
                                _ = tokio::time::sleep(CHECK_EVERY) => {}
                                _ = shutdown.cancelled() => return Ok(self),
                            }
                        }
                    },
                    Err(error) => {
                        tracing::warn!(%error, job = ?self.job, "cannot take the exclusive lock again yet");
                        tokio::select! {
                            _ = tokio::time::sleep(CHECK_EVERY) => {}
                            // Not retaken before the stop: `self` holds a dead session, which
                            // holds nothing; the caller only drops it.
                            _ = shutdown.cancelled() => return Ok(self),
                        }
                    }
                }
            }
        }
    }
}

/// The file behind a normalised SQLite URL, or `None` for an in-memory database.
pub(super) fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").unwrap_or(url);
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" || rest.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_files_sit_beside_the_database() {
        assert_eq!(
            sqlite_file("sqlite:///var/lib/crm.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/crm.db"))
        );
        assert_eq!(
            sqlite_file("sqlite://crm.db?mode=rwc"),
            Some(PathBuf::from("crm.db"))
        );
        assert_eq!(sqlite_file("sqlite://:memory:"), None);
        assert_eq!(sqlite_file("sqlite://file?mode=memory"), None);
    }

    #[tokio::test]
    async fn a_second_holder_is_refused_until_the_first_lets_go() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", directory.path().join("crm.db").display());
        let store = Store::connect(&url).await.unwrap();
        let mut first = store.try_lock(Job::EmbeddedBus).await.unwrap().unwrap();
        first.check().await.unwrap();
        assert!(store.try_lock(Job::EmbeddedBus).await.unwrap().is_none());
        // Another job's lock is independent.
        assert!(store.try_lock(Job::Relay).await.unwrap().is_some());
        drop(first);
        assert!(store.try_lock(Job::EmbeddedBus).await.unwrap().is_some());
    }
}
